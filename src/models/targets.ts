// How official `target` class paths map to our constructors. Each model family exports one
// literal TargetTable; models/index.ts merges them into MODEL_TARGETS, which io/config uses for
// YAML configs and the parity runner uses for fixtures (one registry for both). A factory reads
// the config's params into its constructor's typed options with the schema reader
// (util/kwargs.ts readOptions and the constructor's exported *_SCHEMA), never by a cast.

/** A nested `{target, params}` config as the official YAML files write it. */
export interface TargetConfig {
  target: string;
  params?: Record<string, unknown>;
}

/** Build a nested config (e.g. `unet_config`, `first_stage_config`) through the same registry. */
export type BuildFn = (cfg: TargetConfig, where: string) => unknown;

/** params: a config's untyped params (the factory reads them into its constructor's options). */
export type TargetFactory = (params: Record<string, unknown>, build: BuildFn) => unknown;

export type TargetTable = Readonly<Record<string, TargetFactory>>;
