#!/usr/bin/env node
// The `fedmark` command. The CLI is TypeScript run through tsx's loader, registered in this same
// process (no build step, and no second process that a signal would have to reach).
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
