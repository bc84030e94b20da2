// dev/ (rank 8, above train/, below cli/): the project's own tooling, not part of the library
// (the package entry src/index.ts does not export it): the data-driven parity runner over the
// official-code fixtures (parity/), the benchmark network of the W4 workload (bench-unet.ts) and
// the native kernel micro-benchmarks (bench-kernels.ts). `ldm parity` and `ldm bench` run them.

export { runParity, runFixture, listFixtures, findHandler, type ParityReport, type OutputLine } from './parity/runner.ts';
export { FixtureContext, type FixtureHandler, type FixtureOutputs } from './parity/types.ts';
export { BenchUNet } from './bench-unet.ts';
export { benchKernels, type KernelBenchRecord } from './bench-kernels.ts';
