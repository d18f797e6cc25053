export * from './classification.ts';
export * from './fairness.ts';
export * from './histogram.ts';
