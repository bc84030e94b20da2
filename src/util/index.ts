// util/ (rank 0): errors, shapes, environment, seeded random numbers.
export * from './errors.ts';
export * from './shape.ts';
export * from './env.ts';
export * from './rng.ts';
export * from './kwargs.ts';
export * from './describe.ts';
