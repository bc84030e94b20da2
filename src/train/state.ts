// The resume state of a training checkpoint's sidecar (last.json), read field by field: a sidecar
// is a file, it may be damaged or foreign, so every value is checked before a Generator, a
// DataLoader or an optimizer takes it (Generator.setState and DataLoader.setState check ranges).
// One reader for both trainers (trainer.ts: the diffusion model; autoencoder.ts: the first stage).

import { ConfigError, type GeneratorState } from '../util/index.ts';
import type { LoaderState } from '../io/index.ts';

type Obj = Readonly<Record<string, unknown>>;

/** The typed getters of one sidecar's `state` object; errors name the file and the key. */
export interface SidecarState {
  /** a number at `key` inside the object at `path` (dotted, '' for the top) */
  num(path: string, key: string): number;
  /** a Generator's state (Mersenne Twister words, position, cached normal) */
  generator(key: string): GeneratorState;
  /** a DataLoader's position */
  loader(key: string): LoaderState;
  /** an optimizer's step and learning rate */
  optimizer(key: string): { step: number; lr: number };
}

/** The reader of `state` from the sidecar at `where`. */
export function sidecarState(state: Obj, where: string): SidecarState {
  const bad = (key: string, what: string): never => { throw new ConfigError(`resume: ${where}: 'state.${key}' must be ${what}`); };
  const obj = (path: string): Obj => {
    let v: unknown = state;
    for (const k of path === '' ? [] : path.split('.')) v = typeof v === 'object' && v !== null && !Array.isArray(v) ? Reflect.get(v, k) : undefined;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.fromEntries(Object.entries(v)) : bad(path, 'an object');
  };
  const num = (path: string, key: string): number => {
    const x = obj(path)[key];
    return typeof x === 'number' ? x : bad(path === '' ? key : `${path}.${key}`, 'a number');
  };
  return {
    num,
    generator: (key) => {
      const o = obj(key);
      const mt = o['mt'], seed = o['seed'], nn = o['nextNormal'];
      if (!Array.isArray(mt) || !mt.every((x): x is number => typeof x === 'number')) return bad(`${key}.mt`, 'a list of numbers');
      if (typeof seed !== 'string') return bad(`${key}.seed`, 'a string');
      if (nn !== null && typeof nn !== 'number') return bad(`${key}.nextNormal`, 'a number or null');
      return { seed, mt, left: num(key, 'left'), next: num(key, 'next'), nextNormal: nn };
    },
    loader: (key) => ({ epoch: num(key, 'epoch'), position: num(key, 'position') }),
    optimizer: (key) => ({ step: num(key, 'step'), lr: num(key, 'lr') }),
  };
}
