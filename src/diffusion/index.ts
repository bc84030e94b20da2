// diffusion/ (rank 4): the Denoiser contract, beta schedules, Gaussian diffusion math on tensors,
// losses and the variational bound, classifier-free guidance, and the samplers (ancestral DDPM,
// DDIM, PLMS, DPM-Solver++). Never imports models/: models produce Denoisers.

export * from './types.ts';
export * from './schedules.ts';
export * from './gaussian.ts';
export * from './losses.ts';
export * from './guidance.ts';
export * from './samplers/ancestral.ts';
export * from './samplers/ddim.ts';
export * from './samplers/plms.ts';
export * from './samplers/dpm-solver.ts';
export * from './k-denoiser.ts';
export * from './sigma-schedules.ts';
export * from './samplers/k-diffusion.ts';
export * from './samplers/unipc.ts';
export * from './samplers/k-sample.ts';
