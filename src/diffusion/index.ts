// diffusion/ (rank 4): the Denoiser contract, beta schedules, Gaussian diffusion math on tensors,
// losses and the variational bound, classifier-free guidance, and the samplers (ancestral DDPM,
// DDIM, PLMS, DPM-Solver++) in one table, samplers/index.ts. Never imports models/: models
// produce Denoisers.

export * from './types.ts';
export * from './schedules.ts';
export * from './gaussian.ts';
export * from './losses.ts';
export * from './guidance.ts';
export * from './samplers/index.ts';
export * from './k-denoiser.ts';
export * from './sigma-schedules.ts';
