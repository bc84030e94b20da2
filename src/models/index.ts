// models/ (rank 5): the networks of the seeds with official state-dict keys, and the merged
// table of official class paths -> constructors used by configs and the parity runner.

import type { TargetTable } from './targets.ts';

export type { TargetTable, TargetConfig, TargetFactory, BuildFn } from './targets.ts';

export const MODEL_TARGETS: TargetTable = {
} satisfies TargetTable;
