// Learning-rate schedules of the official code (ldm/lr_scheduler.py), used as torch's LambdaLR
// multipliers: at optimizer step n (0-based) the rate is base_lr * f(n), as
// `LambdaLR(opt, lr_lambda=scheduler.schedule)` with Lightning's interval 'step' gives.
//   LambdaWarmUpCosineScheduler   (warm_up_steps, lr_min, lr_max, lr_start, max_decay_steps)
//   LambdaWarmUpCosineScheduler2  (lists: warm_up_steps, f_min, f_max, f_start, cycle_lengths)
//   LambdaLinearScheduler         (same lists; linear instead of cosine after the warm-up)
// Class paths -> factories in SCHEDULER_TARGETS (built from `model.params.scheduler_config`, as
// the official `configure_optimizers` does).

import { ConfigError, checkKwargs, kwargs } from '../util/index.ts';

export interface LrSchedule {
  /** the multiplier f(n) of optimizer step n */
  schedule(n: number): number;
}



/** LambdaWarmUpCosineScheduler: linear warm-up lr_start -> lr_max, cosine to lr_min at max_decay_steps. */
export class LambdaWarmUpCosineScheduler implements LrSchedule {
  readonly warmUp: number; readonly lrMin: number; readonly lrMax: number; readonly lrStart: number; readonly maxDecay: number;
  constructor(p: Record<string, unknown>) {
    const o = 'LambdaWarmUpCosineScheduler';
    checkKwargs(o, p, ['warm_up_steps', 'lr_min', 'lr_max', 'lr_start', 'max_decay_steps', 'verbosity_interval']);
    this.warmUp = kwargs(o, p).num('warm_up_steps'); this.lrMin = kwargs(o, p).num('lr_min'); this.lrMax = kwargs(o, p).num('lr_max');
    this.lrStart = kwargs(o, p).num('lr_start'); this.maxDecay = kwargs(o, p).num('max_decay_steps');
  }
  schedule(n: number): number {
    if (n < this.warmUp) return ((this.lrMax - this.lrStart) / this.warmUp) * n + this.lrStart;
    const t = Math.min((n - this.warmUp) / (this.maxDecay - this.warmUp), 1);
    return this.lrMin + 0.5 * (this.lrMax - this.lrMin) * (1 + Math.cos(t * Math.PI));
  }
}

/** LambdaWarmUpCosineScheduler2: repeated cycles, each a linear warm-up then a cosine decay. */
export class LambdaWarmUpCosineScheduler2 implements LrSchedule {
  readonly warmUp: number[]; readonly fMin: number[]; readonly fMax: number[]; readonly fStart: number[]; readonly cycles: number[];
  readonly cum: number[];
  constructor(p: Record<string, unknown>, owner = 'LambdaWarmUpCosineScheduler2') {
    checkKwargs(owner, p, ['warm_up_steps', 'f_min', 'f_max', 'f_start', 'cycle_lengths', 'verbosity_interval']);
    this.warmUp = kwargs(owner, p).numList('warm_up_steps', [10000]);
    this.fMin = kwargs(owner, p).numList('f_min', [1]);
    this.fMax = kwargs(owner, p).numList('f_max', [1]);
    this.fStart = kwargs(owner, p).numList('f_start', [1e-6]);
    this.cycles = kwargs(owner, p).numList('cycle_lengths', [1e13]);
    const n = this.warmUp.length;
    if (![this.fMin, this.fMax, this.fStart, this.cycles].every((l) => l.length === n)) {
      throw new ConfigError(`${owner}: warm_up_steps, f_min, f_max, f_start and cycle_lengths must have the same length`);
    }
    this.cum = [0];
    for (const c of this.cycles) this.cum.push(this.cum[this.cum.length - 1]! + c);
  }
  /** `find_in_interval`: the cycle holding step n (n <= cumulative length). */
  protected cycle(n: number): number {
    for (let i = 1; i < this.cum.length; i++) if (n <= this.cum[i]!) return i - 1;
    return this.cycles.length - 1;
  }
  schedule(n: number): number {
    const c = this.cycle(n);
    const m = n - this.cum[c]!;
    if (m < this.warmUp[c]!) return ((this.fMax[c]! - this.fStart[c]!) / this.warmUp[c]!) * m + this.fStart[c]!;
    const t = Math.min((m - this.warmUp[c]!) / (this.cycles[c]! - this.warmUp[c]!), 1);
    return this.fMin[c]! + 0.5 * (this.fMax[c]! - this.fMin[c]!) * (1 + Math.cos(t * Math.PI));
  }
}

/** LambdaLinearScheduler: warm-up as above, then f_min + (f_max - f_min) (L - m) / L. */
export class LambdaLinearScheduler extends LambdaWarmUpCosineScheduler2 {
  constructor(p: Record<string, unknown>) {
    super(p, 'LambdaLinearScheduler');
  }
  override schedule(n: number): number {
    const c = this.cycle(n);
    const m = n - this.cum[c]!;
    if (m < this.warmUp[c]!) return ((this.fMax[c]! - this.fStart[c]!) / this.warmUp[c]!) * m + this.fStart[c]!;
    return this.fMin[c]! + ((this.fMax[c]! - this.fMin[c]!) * (this.cycles[c]! - m)) / this.cycles[c]!;
  }
}

export const SCHEDULER_TARGETS = {
  'ldm.lr_scheduler.LambdaWarmUpCosineScheduler': (p: Record<string, unknown>): LrSchedule => new LambdaWarmUpCosineScheduler(p),
  'ldm.lr_scheduler.LambdaWarmUpCosineScheduler2': (p: Record<string, unknown>): LrSchedule => new LambdaWarmUpCosineScheduler2(p),
  'ldm.lr_scheduler.LambdaLinearScheduler': (p: Record<string, unknown>): LrSchedule => new LambdaLinearScheduler(p),
} satisfies Readonly<Record<string, (p: Record<string, unknown>) => LrSchedule>>;

/** Build `scheduler_config` ({target, params}); null config = constant multiplier 1. */
export function buildScheduler(cfg: { target?: unknown; params?: unknown } | null | undefined): LrSchedule {
  if (cfg === null || cfg === undefined) return { schedule: () => 1 };
  const t = String(cfg.target);
  const make = (SCHEDULER_TARGETS as Record<string, (p: Record<string, unknown>) => LrSchedule>)[t];
  if (!make) {
    throw new ConfigError(`config: 'model.params.scheduler_config.target': unknown scheduler '${t}'; known: ${Object.keys(SCHEDULER_TARGETS).join(', ')}`);
  }
  return make((cfg.params ?? {}) as Record<string, unknown>);
}
