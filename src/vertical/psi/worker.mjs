// piscina worker entry for the PSI fast path. Plain JavaScript on purpose: a worker thread does not
// inherit the TypeScript loader of every host (tsx, vitest), so it registers tsx itself and then
// loads the real code, native-ops.ts.
import { register } from 'tsx/esm/api';

register();
const { runNativeTask } = await import('./native-ops.ts');

export default runNativeTask;
