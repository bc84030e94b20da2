// `ldm convert IN OUT [--config YAML] [--ema]`: weights between the official PyTorch checkpoints
// (.ckpt / .pth / .pt, zip or legacy), .safetensors with official keys (our model files) and run
// folders; the format follows OUT's extension (io/convert.ts). With a config (given, or stored
// with the input) the tensors are checked against the model it builds: every key and shape, as
// the official `init_from_ckpt` would see them.

import { ConfigError } from '../util/index.ts';
import { DDPM } from '../models/index.ts';
import type { RawTensor } from '../formats/index.ts';
import { buildModelFromConfig, convertWeights, readConfigFile, validateModelConfig, withoutCkptPaths, type ConfigTree } from '../io/index.ts';

export interface ConvertCommandOptions {
  config?: string;
  ema?: boolean;
}

export interface KeyCheck {
  modelKeys: number;
  missing: string[];
  unexpected: string[];
}

/** Compare tensors with the state dict of the model a config builds; shape mismatches throw. */
export function checkAgainstConfig(tensors: ReadonlyMap<string, RawTensor>, config: ConfigTree, where: string): KeyCheck {
  validateModelConfig(config);
  const model = buildModelFromConfig(withoutCkptPaths(config));
  if (!(model instanceof DDPM)) throw new ConfigError(`${where}: model.target must be a DDPM-family model`);
  const own = model.stateDict();
  const missing = [...own.keys()].filter((k) => !tensors.has(k));
  const unexpected = [...tensors.keys()].filter((k) => !own.has(k));
  if (own.size > 0 && missing.length === own.size) {
    throw new ConfigError(`${where}: no tensor of the input matches the model of the config (input has ${[...tensors.keys()].slice(0, 3).join(', ')}, …; ` +
      `model expects ${[...own.keys()].slice(0, 3).join(', ')}, …)`);
  }
  for (const [k, t] of own) {
    const r = tensors.get(k);
    if (r !== undefined && r.shape.join() !== t.shape.join()) {
      throw new ConfigError(`${where}: tensor ${k} has shape [${r.shape.join(', ')}], the model of the config expects [${t.shape.join(', ')}]`);
    }
  }
  return { modelKeys: own.size, missing, unexpected };
}

export function convertCommand(input: string, output: string, o: ConvertCommandOptions): void {
  const given = o.config ? readConfigFile(o.config) : null;
  let check: KeyCheck | null = null;
  const r = convertWeights(input, output, {
    config: given, ema: o.ema === true,
    check: (tensors, config) => { if (config) check = checkAgainstConfig(tensors, config as ConfigTree, o.config ?? input); },
  });
  const what = r.format === 'torch' ? 'PyTorch zip checkpoint {state_dict, global_step}' : `safetensors${r.config ? ' model file (config in the metadata)' : ''}`;
  console.log(`${r.input} -> ${r.output}: ${what}, ${r.tensors} tensors${r.step !== null ? `, step ${r.step}` : ''}` +
    `${o.ema ? `, EMA weights as the model weights (${r.emaReplaced} tensors)` : ''}`);
  const c = check as KeyCheck | null;
  if (c === null) {
    console.log('keys not checked (no config given or stored with the input; pass --config YAML to check them)');
    return;
  }
  const list = (ks: string[]): string => `${ks.slice(0, 3).join(', ')}${ks.length > 3 ? ', …' : ''}`;
  console.log(`keys checked against the model of ${o.config ?? 'the stored config'}: ${c.modelKeys - c.missing.length} of ${c.modelKeys} present, shapes equal` +
    `${c.missing.length ? `; MISSING ${c.missing.length}: ${list(c.missing)}` : ''}${c.unexpected.length ? `; UNEXPECTED ${c.unexpected.length}: ${list(c.unexpected)}` : ''}`);
}
