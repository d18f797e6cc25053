export * from './errors.ts';
export * from './schemas.ts';
export * from './routes.ts';
export * from './client.ts';
