// The shapes every trainer of train/ shares: the options of a run, its progress events and the
// common part of its result. The trainers (trainer.ts for DDPM-family configs, autoencoder.ts for
// first stages) import these; run.ts picks a trainer by the config's model.target.

import { LdmError } from '../util/index.ts';
import type { ConfigTree, DataModule } from '../io/index.ts';

export class TrainingStopped extends LdmError {}

export type TrainEvent =
  | { type: 'start'; step: number; maxSteps: number; parameters: number; learningRate: number; dataset: string; examples: number; outDir: string; resumed: boolean; batchSize: number }
  | { type: 'step'; step: number; maxSteps: number; loss: number; lr: number; itPerSec: number; imgPerSec: number; etaSec: number; epoch: number }
  | { type: 'info' | 'warn'; message: string }
  | { type: 'checkpoint'; step: number; path: string }
  | { type: 'images'; step: number; paths: string[] }
  | { type: 'val'; step: number; values: Record<string, number> }
  | { type: 'done'; step: number; reason: 'finished' | 'stopped' | 'killed'; modelPath: string | null; seconds: number; imgPerSec: number };

export interface TrainOptions {
  /** the resolved config (overrides applied) */
  config: ConfigTree;
  /** the run folder (config.yaml, metrics.jsonl, loss.png, images/, checkpoints/, model.safetensors) */
  outDir: string;
  /** continue from outDir's last checkpoint */
  resume?: boolean;
  /** a new run (step 0) from these trained weights instead of the seed's (init-from.ts); not with resume */
  initFrom?: string;
  onEvent?: (e: TrainEvent) => void;
  /** checked after every step: true saves a checkpoint and returns (Ctrl-C) */
  shouldStop?: () => boolean;
  /** tests: return after this many steps of this process as if killed (no final checkpoint) */
  killAfterSteps?: number;
  /** pre-loaded data (tests, demo) instead of the config's data section */
  data?: DataModule;
}

/** What every trainer returns (plus its model and its own report). */
export interface RunResult {
  step: number;
  reason: 'finished' | 'stopped' | 'killed';
  /** the training losses of this process, in step order */
  losses: number[];
  modelPath: string | null;
  imgPerSec: number;
}
