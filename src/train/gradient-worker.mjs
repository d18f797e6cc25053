// piscina worker entry for DP-SGD's chunked per-example gradients. Plain JavaScript on purpose: a
// worker thread does not inherit the TypeScript loader of its parent under every runner (vitest,
// tsx), so it registers tsx itself and then loads the task.
import { register } from 'tsx/esm/api';

register();
const { default: gradientTask } = await import('./gradient-task.ts');
export default gradientTask;
