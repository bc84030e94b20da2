// torch-pickle: read official PyTorch checkpoints (`torch.save` zip archives: `<name>/data.pkl`
// plus storages `<name>/data/<key>`, as `.ckpt` / `.pth` / `.pt`) with a RESTRICTED unpickler.
// The pickle VM interprets the opcodes of protocols 0-5 that hold data, and knows a fixed
// allow-list of globals (OrderedDict, torch tensor / parameter rebuilders, storage classes,
// dtypes). It never imports, evaluates or calls anything named by the file: any other global
// raises FormatError (or, with `unknownGlobals: 'stub'`, becomes an inert `{__global__, args}`
// record). Output: a plain tree of objects, arrays, numbers (bigint beyond 2^53), strings,
// booleans, null, Uint8Array (bytes) and RawTensor leaves (contiguous, C order).
// The legacy (pre-1.6, non-zip) torch.save format is read by torch-legacy.ts with the same
// allow-list. It is not a writer (torch-write.ts), does not read TorchScript archives, and does
// no file I/O.
// Memory stays bounded by what the file honestly describes: storages are inflated only when a
// tensor uses them, never past the size the pickle declares for them nor past what deflate can
// produce from the compressed bytes; a strided tensor is gathered only when its elements fit in
// its storage (stride-0 / expanded views that would multiply the storage are refused), and all
// gathers together are charged against the unpickler's budget.

import { clip, describe } from '../util/index.ts';
import { FormatError } from './errors.ts';
import {
  ITEM_COST, defaultPickleBudget, globalName, newDict, setDictItem, unpickle, type GlobalDef, type PickleCtx, type UnknownGlobals,
} from './pickle.ts';
import { isRawTensor, numelOf, ST_DTYPES, typedAt, type RawData, type RawTensor, type StDtype } from './safetensors.ts';
import { maxInflatedSize, readZipDirectory, readZipEntry, type ZipEntry } from './zip.ts';

export interface TorchReadOptions {
  /**
   * What to do with a global outside the allow-list: 'error' (default) throws FormatError naming
   * it; 'stub' records it as `{ __global__: 'module.name' }`, calls on it as
   * `{ __global__, args }` (plus `state` after BUILD). Nothing is ever executed either way;
   * 'stub' lets one read the tensors of Lightning checkpoints that also pickle callback objects.
   */
  unknownGlobals?: UnknownGlobals;
}

// ---- storages, tensors and the allow-list ---------------------------------------------------

const own = <T>(rec: Record<string, T>, key: string): T | undefined =>
  Object.prototype.hasOwnProperty.call(rec, key) ? rec[key] : undefined;

/**
 * A storage of `<archive>/data/<key>` (read, i.e. inflated, the first time a tensor needs its
 * bytes) or of the data section of a legacy file.
 */
export class TorchStorage {
  private views = new Map<StDtype, RawData>();
  private loaded: Uint8Array | undefined;
  private readonly load: () => Uint8Array;
  constructor(readonly key: string, bytes: Uint8Array | (() => Uint8Array), readonly dtype: StDtype | 'untyped') {
    if (bytes instanceof Uint8Array) this.loaded = bytes;
    this.load = bytes instanceof Uint8Array ? () => bytes : bytes;
  }
  get bytes(): Uint8Array {
    this.loaded ??= this.load();
    return this.loaded;
  }
  typed(dtype: StDtype, ctx: PickleCtx): RawData {
    let v = this.views.get(dtype);
    if (v === undefined) {
      const b = this.bytes;
      const { size } = ST_DTYPES[dtype];
      if ((b.byteOffset + 0) % size !== 0) ctx.charge(b.byteLength, `aligned copy of storage "${clip(this.key, 60)}"`);
      v = typedAt(b, 0, dtype, Math.floor(b.byteLength / size));
      this.views.set(dtype, v);
    }
    return v;
  }
}

const STORAGE_DTYPES: Record<string, StDtype> = {
  FloatStorage: 'F32', DoubleStorage: 'F64', HalfStorage: 'F16', BFloat16Storage: 'BF16',
  LongStorage: 'I64', IntStorage: 'I32', ByteStorage: 'U8', CharStorage: 'I8', BoolStorage: 'BOOL',
};
const TORCH_DTYPES: Record<string, StDtype> = {
  float32: 'F32', float: 'F32', float64: 'F64', double: 'F64', float16: 'F16', half: 'F16',
  bfloat16: 'BF16', int64: 'I64', long: 'I64', int32: 'I32', int: 'I32', uint8: 'U8',
  int8: 'I8', bool: 'BOOL',
};

function rebuildTensor(args: unknown[], dtypeArg: unknown, ctx: PickleCtx): RawTensor {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof TorchStorage)) return ctx.fail('tensor rebuild: first argument is not a storage');
  let dtype: StDtype;
  if (dtypeArg !== undefined) {
    const d = typeof dtypeArg === 'string' ? own(TORCH_DTYPES, dtypeArg.replace(/^torch\./, '')) : undefined;
    if (d === undefined) return ctx.fail(`tensor rebuild: unsupported dtype ${describe(dtypeArg)}`);
    dtype = d;
  } else if (storage.dtype === 'untyped') {
    return ctx.fail(`tensor rebuild: storage "${clip(storage.key, 60)}" is untyped and no dtype was given`);
  } else {
    dtype = storage.dtype;
  }
  const isIntList = (v: unknown): v is number[] =>
    Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0);
  const key = clip(storage.key, 60);
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) {
    return ctx.fail(`tensor rebuild (storage "${key}"): bad storage offset ${describe(offset)}`);
  }
  if (!isIntList(size) || !isIntList(stride) || size.length !== stride.length || size.length > 64) {
    return ctx.fail(`tensor rebuild (storage "${key}"): bad size ${describe(size, 100)} / stride ${describe(stride, 100)} ` +
      '(two lists of at most 64 non-negative integers)');
  }
  const off = offset as number;
  const numel = numelOf(size);
  const shape = size.slice();
  const at = (): string => `tensor rebuild: size ${describe(size, 100)} stride ${describe(stride, 100)} offset ${off}`;
  // an element count or an extent past 2^53 (or NaN: 2^53-1 entries times 0) is not a tensor
  if (!Number.isSafeInteger(numel) || !Number.isSafeInteger(numel * ST_DTYPES[dtype].size)) {
    return ctx.fail(`${at()}: the element count ${numel} is not an integer below 2^53`);
  }
  if (numel === 0) return { dtype, shape, data: storage.typed(dtype, ctx).subarray(0, 0) };
  let last = off;
  for (let d = 0; d < size.length; d++) last += ((size[d] as number) - 1) * (stride[d] as number);
  if (!Number.isSafeInteger(last)) return ctx.fail(`${at()}: reaches past element 2^53 of storage "${key}"`);
  const src = storage.typed(dtype, ctx);
  if (last >= src.length) {
    return ctx.fail(`${at()} reaches element ${last} of storage "${key}" which holds ${src.length} ${dtype} elements`);
  }
  // Contiguous (dims of size 1 may carry any stride): a view of the storage.
  let contiguous = true;
  for (let d = size.length - 1, want = 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== want) contiguous = false;
    want *= size[d] as number;
  }
  if (contiguous) return { dtype, shape, data: src.subarray(off, off + numel) };
  // A strided view with more elements than its storage (stride 0: expand(), broadcast) multiplies
  // the file's bytes when gathered: charged to the budget, so only small ones are materialised.
  ctx.charge(numel * ST_DTYPES[dtype].size, numel > src.length
    ? `${at()} expands storage "${key}" of ${src.length} elements into ${numel} (a stride-0 view; save it with .contiguous()), which`
    : `gathering the strided tensor of storage "${key}"`);
  // Strided: gather into a new C-order array. // [size...] ← storage[offset + Σ i_d·stride_d]
  const out = new (src.constructor as new (n: number) => RawData)(numel);
  const nd = size.length;
  const idx = new Array<number>(nd).fill(0);
  let pos = off;
  for (let i = 0; i < numel; i++) {
    out[i] = src[pos] as never;
    for (let d = nd - 1; d >= 0; d--) {
      const k = (idx[d] as number) + 1;
      pos += stride[d] as number;
      if (k < (size[d] as number)) {
        idx[d] = k;
        break;
      }
      pos -= (stride[d] as number) * (size[d] as number);
      idx[d] = 0;
    }
  }
  return { dtype, shape, data: out };
}

const GLOBALS: Record<string, { call?: (args: unknown[], ctx: PickleCtx) => unknown }> = {
  'collections.OrderedDict': {
    call: (args, ctx) => {
      const d = newDict();
      const items = args[0];
      if (items !== undefined) {
        if (!Array.isArray(items)) return ctx.fail('OrderedDict: argument is not a list of pairs');
        for (const kv of items) {
          if (!Array.isArray(kv) || kv.length !== 2) return ctx.fail('OrderedDict: item is not a pair');
          ctx.charge(2 * ITEM_COST, 'OrderedDict');
          setDictItem(d, kv[0], kv[1], ctx);
        }
      }
      return d;
    },
  },
  'builtins.set': { call: (args, ctx) => setOf(args, ctx) },
  'builtins.frozenset': { call: (args, ctx) => setOf(args, ctx) },
  '__builtin__.set': { call: (args, ctx) => setOf(args, ctx) },
  // Protocol 2 pickles `bytes` as _codecs.encode(str, 'latin1').
  '_codecs.encode': {
    call: (args, ctx) => {
      const [s, enc] = args;
      if (typeof s !== 'string' || (enc !== 'latin1' && enc !== 'latin-1')) {
        return ctx.fail(`_codecs.encode: only (str, 'latin1') is supported`);
      }
      ctx.charge(s.length, '_codecs.encode');
      return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
    },
  },
  'torch._utils._rebuild_tensor': { call: (a, ctx) => rebuildTensor(a, undefined, ctx) },
  'torch._utils._rebuild_tensor_v2': { call: (a, ctx) => rebuildTensor(a, undefined, ctx) },
  // (storage, offset, size, stride, requires_grad, backward_hooks, dtype, metadata?)
  'torch._utils._rebuild_tensor_v3': { call: (a, ctx) => rebuildTensor(a, a[6] ?? null, ctx) },
  'torch._utils._rebuild_parameter': { call: (a, ctx) => tensorArg(a[0], ctx) },
  'torch._utils._rebuild_parameter_with_state': { call: (a, ctx) => tensorArg(a[0], ctx) },
  // (func, new_type, args, state): a Tensor / Parameter wrapped with its Python attributes.
  'torch._tensor._rebuild_from_type_v2': {
    call: (a, ctx) => {
      const [fn, newType, args] = a;
      const t = globalName(newType);
      if (t !== 'torch.Tensor' && t !== 'torch.nn.parameter.Parameter') {
        return ctx.fail(`_rebuild_from_type_v2: tensor subclass ${t ?? describe(newType)} is not supported`);
      }
      if (!Array.isArray(args)) return ctx.fail('_rebuild_from_type_v2: arguments are not a tuple');
      return tensorArg(ctx.call(fn, args), ctx);
    },
  },
  'torch.Tensor': {},
  'torch.nn.parameter.Parameter': {},
  'torch.storage.UntypedStorage': {},
  'torch.UntypedStorage': {},
};
for (const cls of Object.keys(STORAGE_DTYPES)) GLOBALS[`torch.${cls}`] = {};

/** set(list) / frozenset(list): a copy of the list (charged: a pickle may call it many times). */
function setOf(args: unknown[], ctx: PickleCtx): unknown[] {
  const l = args[0];
  if (!Array.isArray(l)) return [];
  ctx.charge(l.length * ITEM_COST, 'set()');
  return l.slice();
}

/** The allow-list: torch dtypes (as their names, 'torch.float32') and the GLOBALS table. */
export function resolveTorchGlobal(module: string, name: string): GlobalDef | undefined {
  if (module === 'torch' && own(TORCH_DTYPES, name) !== undefined) return { value: `torch.${name}` };
  return own(GLOBALS, `${module}.${name}`);
}

/** Element type of a storage class reference ('untyped' = raw bytes), undefined if not one. */
export function storageKind(cls: unknown): StDtype | 'untyped' | undefined {
  const n = globalName(cls);
  if (n === 'torch.storage.UntypedStorage' || n === 'torch.UntypedStorage') return 'untyped';
  return n !== undefined && n.startsWith('torch.') ? own(STORAGE_DTYPES, n.slice(6)) : undefined;
}

function tensorArg(v: unknown, ctx: PickleCtx): RawTensor {
  if (!isRawTensor(v)) return ctx.fail('parameter rebuild: argument is not a tensor');
  return v;
}

// ---- checkpoints ----------------------------------------------------------------------------

/**
 * Read a `torch.save` zip archive held in memory into a plain value tree (see file header);
 * `readTorchCheckpoint` (torch-checkpoint.ts) picks this or the legacy reader. `source` names the
 * file in error messages.
 */
export function readZipTorchCheckpoint(bytes: Uint8Array, source = '<bytes>', options: TorchReadOptions = {}): unknown {
  const dir = readZipDirectory(bytes, source);
  const pkls = [...dir.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1) {
    const what = [...dir.keys()].some((n) => /(^|\/)constants\.pkl$/.test(n)) ? ' (TorchScript archives are not supported)' : '';
    throw new FormatError(source, `expected exactly one "<archive>/data.pkl" entry, found ${pkls.length}${what}`);
  }
  const prefix = (pkls[0] as string).slice(0, -'data.pkl'.length);
  const entry = (name: string): ZipEntry | undefined => dir.get(prefix + name);
  const order = entry('byteorder');
  if (order !== undefined) {
    const bo = new TextDecoder().decode(readZipEntry(bytes, order, source)).trim();
    if (bo !== 'little') throw new FormatError(source, `byteorder ${describe(bo, 40)} is not supported (only little-endian)`);
  }
  const storages = new Map<string, TorchStorage>();
  const persistentLoad = (pid: unknown, ctx: PickleCtx): TorchStorage => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 3) {
      return ctx.fail(`persistent id ${describe(pid)} is not a storage reference`);
    }
    const [, cls, key, , numel] = pid as [string, unknown, unknown, unknown, unknown];
    const kind = storageKind(cls);
    if (kind === undefined) return ctx.fail(`storage class ${globalName(cls) ?? describe(cls)} is not supported`);
    if (typeof key !== 'string') return ctx.fail(`storage key ${describe(key)} is not a string`);
    const seen = storages.get(key);
    if (seen !== undefined) return seen;
    const name = clip(key, 60);
    const e = entry(`data/${key}`);
    if (e === undefined) return ctx.fail(`storage "${name}" has no entry "${clip(prefix, 60)}data/${name}"`);
    const item = kind === 'untyped' ? 1 : ST_DTYPES[kind].size;
    if (e.size % item !== 0) return ctx.fail(`storage "${name}" holds ${e.size} bytes, not a whole number of ${kind} elements`);
    // torch.save writes the storage's element count (bytes for untyped storages) in the id
    if (numel !== undefined && (!Number.isSafeInteger(numel) || (numel as number) * item !== e.size)) {
      return ctx.fail(`storage "${name}": the pickle declares ${describe(numel, 40)} ${kind} elements, its entry holds ${e.size} bytes`);
    }
    const s = new TorchStorage(key, () => readZipEntry(bytes, e, source), kind);
    storages.set(key, s);
    return s;
  };
  const pklName = pkls[0] as string;
  const pkl = readZipEntry(bytes, dir.get(pklName) as ZipEntry, source);
  // what the archive's storages hold may be gathered once over (strided tensors), no more
  let storageBytes = 0;
  for (const [n, e] of dir) if (n.startsWith(`${prefix}data/`)) storageBytes += Math.min(e.size, maxInflatedSize(e));
  return unpickle(pkl, `${source}:${pklName}`, {
    ...options, resolveGlobal: resolveTorchGlobal, persistentLoad, byteBudget: defaultPickleBudget(pkl.byteLength) + storageBytes,
  });
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && !isRawTensor(v);
}

/**
 * The tensors of a checkpoint tree: `tree.state_dict` (Lightning checkpoints) or the tree itself
 * when it is a mapping of tensors (`torch.save(model.state_dict())`). With `prefix`, only keys
 * starting with it are kept, with the prefix removed (`'model.diffusion_model.'`). `source` names
 * the file in error messages.
 */
export function extractStateDict(tree: unknown, prefix = '', source = '<checkpoint>'): Map<string, RawTensor> {
  const fail = (msg: string): never => {
    throw new FormatError(source, msg);
  };
  let sd: Record<string, unknown>;
  if (isMapping(tree) && isMapping(tree['state_dict'])) sd = tree['state_dict'];
  else if (isMapping(tree) && Object.values(tree).some(isRawTensor)) sd = tree;
  else {
    const keys = isMapping(tree) ? clip(Object.keys(tree).slice(0, 20).map((k) => clip(k, 40)).join(', '), 200) : typeof tree;
    return fail(`no state_dict found: expected a "state_dict" entry or a mapping of tensors, got {${keys}} ` +
      '(pass the sub-tree that holds the tensors, e.g. tree.ema_model)');
  }
  const out = new Map<string, RawTensor>();
  for (const [k, v] of Object.entries(sd)) {
    if (!k.startsWith(prefix)) continue;
    if (!isRawTensor(v)) return fail(`state_dict entry "${clip(k, 100)}" is not a tensor (it is ${describe(v, 80)})`);
    out.set(k.slice(prefix.length), v);
  }
  if (out.size === 0 && prefix !== '') {
    return fail(`no state_dict key starts with "${clip(prefix, 60)}" (first keys: ${Object.keys(sd).slice(0, 5).map((k) => clip(k, 40)).join(', ')})`);
  }
  return out;
}
