// How official `target` class paths map to our constructors. Each model family exports one
// literal TargetTable; models/index.ts merges them into MODEL_TARGETS, which io/config uses for
// YAML configs and the parity runner uses for fixtures (one registry for both).

/** A nested `{target, params}` config as the official YAML files write it. */
export interface TargetConfig {
  target: string;
  params?: Record<string, unknown>;
}

/** Build a nested config (e.g. `unet_config`, `first_stage_config`) through the same registry. */
export type BuildFn = (cfg: TargetConfig, where: string) => unknown;

export type TargetFactory = (params: Record<string, unknown>, build: BuildFn) => unknown;

export type TargetTable = Readonly<Record<string, TargetFactory>>;

/**
 * A config's params as the options type of the constructor they go to. The one unchecked step of
 * the registry, and deliberately so: each such constructor reads its options through the kwargs
 * reader (util/kwargs.ts), which rejects unknown keys and checks every value's type, so the
 * options are validated where they are used rather than twice.
 */
export function configOptions<T extends object>(params: Readonly<Record<string, unknown>>): T {
  return params as unknown as T; // validated by the constructor's Kwargs reader (see above)
}
