// piscina worker entry for the pool of ./worker-pool.ts: one named export per task kind. Plain
// JavaScript on purpose: a worker thread does not inherit the TypeScript loader of its parent under
// every runner (vitest, tsx), so it registers tsx itself; each task's module is loaded on first use.
import { register } from 'tsx/esm/api';

register();

export async function gradients(task) {
  const { default: run } = await import('../train/gradient-task.ts');
  return run(task);
}

export async function histograms(task) {
  const { default: run } = await import('../trees/histogram-task.ts');
  return run(task);
}

export async function scores(task) {
  const { default: run } = await import('../scoring/score-task.ts');
  return run(task);
}
