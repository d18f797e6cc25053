/** fedmark: the library data scientists import. Nodes (coordinator/, partner/, owner/) are built on top of it. */
export * from './errors.ts';
export * from './data/index.ts';
export * from './model/index.ts';
export * from './train/index.ts';
export * from './metrics/index.ts';
export * from './privacy/index.ts';
export * from './crypto/index.ts';
export * from './federation/index.ts';
