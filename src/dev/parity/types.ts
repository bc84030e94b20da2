// The contract between the parity runner and the per-family fixture handlers.
// A handler performs exactly the official call a fixture's metadata describes and returns our
// outputs under the fixture's `out.*` names (the runner compares them).

import { Generator, LdmError } from '../../util/index.ts';
import { Tensor } from '../../tensor/index.ts';

export interface FixtureConfig {
  class?: string;
  init?: unknown;
  call?: unknown;
  notes?: unknown;
  [key: string]: unknown;
}

export class FixtureContext {
  readonly config: FixtureConfig;
  readonly stateKeys: string[];
  readonly inputKeys: string[];
  readonly outputKeys: string[];
  readonly name: string;

  constructor(readonly path: string, readonly tensors: ReadonlyMap<string, Tensor>,
    readonly float64: ReadonlyMap<string, Float64Array>, readonly metadata: Readonly<Record<string, string>>) {
    const json = (k: string, fallback: unknown): unknown => {
      const v = metadata[k];
      if (v === undefined) return fallback;
      try {
        return JSON.parse(v);
      } catch {
        throw new LdmError(`${path}: metadata '${k}' is not valid JSON`);
      }
    };
    this.config = json('config', {}) as FixtureConfig;
    this.stateKeys = json('state_dict_keys', []) as string[];
    this.inputKeys = json('input_keys', []) as string[];
    this.outputKeys = json('output_keys', []) as string[];
    this.name = metadata['fixture'] ?? path;
  }

  /** A tensor stored in the file under its full name (e.g. 'in.x'), or a clear error. */
  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new LdmError(`${this.path}: fixture has no tensor '${name}'`);
    return t;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** `in.<name>`. */
  input(name: string): Tensor {
    return this.get(`in.${name}`);
  }

  /** The module weights: the state_dict keys listed in the metadata (with an optional prefix stripped). */
  stateDict(stripPrefix = ''): Map<string, Tensor> {
    const sd = new Map<string, Tensor>();
    for (const k of this.stateKeys) {
      if (!k.startsWith(stripPrefix)) continue;
      sd.set(k.slice(stripPrefix.length), this.get(k));
    }
    return sd;
  }

  /** Output names (without 'out.') expected by the fixture. */
  wants(name: string): boolean {
    return this.outputKeys.includes(`out.${name}`);
  }

  /** A deterministic generator for handlers that must draw nothing but need one to pass. */
  generator(): Generator {
    return new Generator(Number(this.config['seed'] ?? 0));
  }
}

/** Our outputs under 'out.*' names; numbers (e.g. logged scalars) are allowed. */
export type FixtureOutputs = Map<string, Tensor | number | Float64Array>;

export interface FixtureHandler {
  /** What the handler covers, for messages. */
  readonly family: string;
  /** Fixture-name prefixes of the family (the metadata `fixture` field). */
  readonly prefixes: readonly string[];
  run(ctx: FixtureContext): FixtureOutputs;
}
