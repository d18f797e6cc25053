export * from './local.ts';
export * from './dp-sgd.ts';
export * from './optimizers.ts';
export * from './server-optimizers.ts';
export { createWorkspace, forward, backward, lossAndOutputDelta, perExampleSquaredNorms, accumulateGradient, sigmoid, type Workspace } from './backprop.ts';
