// Companion files of a parity fixture: `config.companion_files` names files in the fixture's
// folder, e.g. {"ckpt": "x.ckpt", "ckpt_legacy": "x_legacy.ckpt", "yaml": "x.yaml"}. Every
// weights file among them (.ckpt / .pth / .pt / .safetensors, or a folder) is loaded with the
// YAML exactly as `ldm sample CKPT --config YAML` loads it (io/load-model.ts), so one fixture checks
// every checkpoint format the official code writes. Handlers of any family that samples from a
// checkpoint (DDIM here; other samplers later) reuse this and name their outputs `out.<name>@<label>`
// so the runner compares each against the one reference `out.<name>`.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LdmError } from '../../util/index.ts';
import { loadDiffusionModel, type LoadedDiffusionModel } from '../../io/index.ts';
import type { FixtureContext } from './types.ts';

export interface CompanionModel {
  /** the companion_files key (e.g. 'ckpt', 'ckpt_legacy') */
  label: string;
  path: string;
  loaded: LoadedDiffusionModel;
}

const WEIGHTS = /\.(ckpt|pth|pt|safetensors)$/i;

/** The fixture's companion files, resolved against its folder (missing files are an error). */
export function companionFiles(ctx: FixtureContext): Record<string, string> {
  const raw = ctx.config['companion_files'];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new LdmError(`${ctx.path}: config.companion_files must map labels to file names`);
  const out: Record<string, string> = {};
  for (const [label, name] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof name !== 'string' || name.includes('..')) throw new LdmError(`${ctx.path}: companion_files.${label} must be a file name in the fixture's folder`);
    const p = join(dirname(ctx.path), name);
    if (!existsSync(p)) throw new LdmError(`${ctx.path}: companion file ${p} (companion_files.${label}) does not exist`);
    out[label] = p;
  }
  return out;
}

/** Every weights companion loaded with the `yaml` companion (EMA weights swapped in unless noEma). */
export function companionModels(ctx: FixtureContext, noEma = false): CompanionModel[] {
  const files = companionFiles(ctx);
  const yaml = files['yaml'];
  const models: CompanionModel[] = [];
  for (const [label, path] of Object.entries(files)) {
    if (label === 'yaml' || !WEIGHTS.test(path)) continue;
    models.push({ label, path, loaded: loadDiffusionModel({ checkpoint: path, config: yaml, noEma }) });
  }
  if (models.length === 0) throw new LdmError(`${ctx.path}: config.companion_files names no checkpoint`);
  return models;
}
