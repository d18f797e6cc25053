export * from './schema.ts';
export * from './format.ts';
export * from './model-card.ts';
export * from './html.ts';
export * from './sample-input.ts';
