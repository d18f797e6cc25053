export * from './spec.ts';
export * from './backend.ts';
export * from './params.ts';
export * from './tfjs-io.ts';
