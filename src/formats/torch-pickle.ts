// torch-pickle: read official PyTorch checkpoints (`torch.save` zip archives: `<name>/data.pkl`
// plus storages `<name>/data/<key>`, as `.ckpt` / `.pth` / `.pt`) with a RESTRICTED unpickler.
// The pickle VM interprets the opcodes of protocols 0-5 that hold data, and knows a fixed
// allow-list of globals (OrderedDict, torch tensor / parameter rebuilders, storage classes,
// dtypes). It never imports, evaluates or calls anything named by the file: any other global
// raises FormatError (or, with `unknownGlobals: 'stub'`, becomes an inert `{__global__, args}`
// record). Output: a plain tree of objects, arrays, numbers (bigint beyond 2^53), strings,
// booleans, null, Uint8Array (bytes) and RawTensor leaves (contiguous, C order).
// It is not a writer (we write safetensors), does not read TorchScript archives or the legacy
// (pre-1.6, non-zip) torch.save format, and does no file I/O.

import { FormatError } from './errors.ts';
import { isRawTensor, numelOf, ST_DTYPES, typedAt, type RawData, type RawTensor, type StDtype } from './safetensors.ts';
import { looksLikeZip, readZipDirectory, readZipEntry, type ZipEntry } from './zip.ts';

export interface TorchReadOptions {
  /**
   * What to do with a global outside the allow-list: 'error' (default) throws FormatError naming
   * it; 'stub' records it as `{ __global__: 'module.name' }`, calls on it as
   * `{ __global__, args }` (plus `state` after BUILD). Nothing is ever executed either way;
   * 'stub' lets one read tensors from Lightning checkpoints that also pickle callback objects.
   */
  unknownGlobals?: 'error' | 'stub';
}

/** What a non-allow-listed global becomes with `unknownGlobals: 'stub'`. */
export interface PickleStub {
  __global__: string;
  args?: unknown[];
  state?: unknown;
}

// ---- allow-list -----------------------------------------------------------------------------

interface Ctx {
  source: string;
  fail: (msg: string) => never;
  call: (fn: unknown, args: unknown[]) => unknown;
}
interface GlobalDef {
  /** Invoked by REDUCE / NEWOBJ with the argument tuple. Absent: the global is not callable. */
  call?: (args: unknown[], ctx: Ctx) => unknown;
  /** Storage classes: the element type of their storages ('untyped' = raw bytes). */
  storage?: StDtype | 'untyped';
}

/** A storage loaded from `<archive>/data/<key>`. */
class TorchStorage {
  private views = new Map<StDtype, RawData>();
  constructor(readonly key: string, readonly bytes: Uint8Array, readonly dtype: StDtype | 'untyped') {}
  typed(dtype: StDtype): RawData {
    let v = this.views.get(dtype);
    if (v === undefined) {
      v = typedAt(this.bytes, 0, dtype, Math.floor(this.bytes.byteLength / ST_DTYPES[dtype].size));
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

function rebuildTensor(args: unknown[], dtypeArg: unknown, ctx: Ctx): RawTensor {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof TorchStorage)) return ctx.fail('tensor rebuild: first argument is not a storage');
  let dtype: StDtype;
  if (dtypeArg !== undefined) {
    const d = typeof dtypeArg === 'string' ? TORCH_DTYPES[dtypeArg.replace(/^torch\./, '')] : undefined;
    if (d === undefined) return ctx.fail(`tensor rebuild: unsupported dtype ${String(dtypeArg)}`);
    dtype = d;
  } else if (storage.dtype === 'untyped') {
    return ctx.fail(`tensor rebuild: storage "${storage.key}" is untyped and no dtype was given`);
  } else {
    dtype = storage.dtype;
  }
  const isIntList = (v: unknown): v is number[] =>
    Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0);
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) {
    return ctx.fail(`tensor rebuild (storage "${storage.key}"): bad storage offset ${String(offset)}`);
  }
  if (!isIntList(size) || !isIntList(stride) || size.length !== stride.length) {
    return ctx.fail(`tensor rebuild (storage "${storage.key}"): bad size ${JSON.stringify(size)} / stride ${JSON.stringify(stride)}`);
  }
  const src = storage.typed(dtype);
  const off = offset as number;
  const numel = numelOf(size);
  const shape = size.slice();
  if (numel === 0) return { dtype, shape, data: src.subarray(0, 0) };
  let last = off;
  for (let d = 0; d < size.length; d++) last += ((size[d] as number) - 1) * (stride[d] as number);
  if (last >= src.length) {
    return ctx.fail(`tensor rebuild: size [${size.join(', ')}] stride [${stride.join(', ')}] offset ${off} ` +
      `reaches element ${last} of storage "${storage.key}" which holds ${src.length} ${dtype} elements`);
  }
  // Contiguous (dims of size 1 may carry any stride): a view of the storage.
  let contiguous = true;
  for (let d = size.length - 1, want = 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== want) contiguous = false;
    want *= size[d] as number;
  }
  if (contiguous) return { dtype, shape, data: src.subarray(off, off + numel) };
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

function newDict(): Record<string, unknown> {
  const d: Record<string, unknown> = {};
  dictObjects.add(d);
  return d;
}

const GLOBALS: Record<string, GlobalDef> = {
  'collections.OrderedDict': {
    call: (args, ctx) => {
      const d = newDict();
      const items = args[0];
      if (items !== undefined) {
        if (!Array.isArray(items)) return ctx.fail('OrderedDict: argument is not a list of pairs');
        for (const kv of items) {
          if (!Array.isArray(kv) || kv.length !== 2) return ctx.fail('OrderedDict: item is not a pair');
          setKey(d, kv[0], kv[1], ctx);
        }
      }
      return d;
    },
  },
  'builtins.set': { call: (args) => (Array.isArray(args[0]) ? args[0].slice() : []) },
  'builtins.frozenset': { call: (args) => (Array.isArray(args[0]) ? args[0].slice() : []) },
  '__builtin__.set': { call: (args) => (Array.isArray(args[0]) ? args[0].slice() : []) },
  // Protocol 2 pickles `bytes` as _codecs.encode(str, 'latin1').
  '_codecs.encode': {
    call: (args, ctx) => {
      const [s, enc] = args;
      if (typeof s !== 'string' || (enc !== 'latin1' && enc !== 'latin-1')) {
        return ctx.fail(`_codecs.encode: only (str, 'latin1') is supported`);
      }
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
      const t = refName(newType);
      if (t !== 'torch.Tensor' && t !== 'torch.nn.parameter.Parameter') {
        return ctx.fail(`_rebuild_from_type_v2: tensor subclass ${t ?? String(newType)} is not supported`);
      }
      if (!Array.isArray(args)) return ctx.fail('_rebuild_from_type_v2: arguments are not a tuple');
      return tensorArg(ctx.call(fn, args), ctx);
    },
  },
  'torch.Tensor': {},
  'torch.nn.parameter.Parameter': {},
  'torch.storage.UntypedStorage': { storage: 'untyped' },
  'torch.UntypedStorage': { storage: 'untyped' },
};
for (const [cls, dt] of Object.entries(STORAGE_DTYPES)) GLOBALS[`torch.${cls}`] = { storage: dt };

function tensorArg(v: unknown, ctx: Ctx): RawTensor {
  if (!isRawTensor(v)) return ctx.fail('parameter rebuild: argument is not a tensor');
  return v;
}

// Objects the VM made, by kind (identity sets: the output itself stays plain).
const dictObjects = new WeakSet<object>();
const setObjects = new WeakSet<object>();
const refDefs = new WeakMap<object, { name: string; def: GlobalDef | undefined }>();
const stubObjects = new WeakSet<object>();

function refName(v: unknown): string | undefined {
  return typeof v === 'object' && v !== null ? refDefs.get(v)?.name : undefined;
}

/** Python dict key → JS property name: str as is, int / float / bool / None as Python prints them. */
function keyString(k: unknown, ctx: Ctx): string {
  if (typeof k === 'string') return k;
  if (typeof k === 'number' || typeof k === 'bigint') return String(k);
  if (typeof k === 'boolean') return k ? 'True' : 'False';
  if (k === null) return 'None';
  if (Array.isArray(k) && k.every((x) => typeof x !== 'object' || x === null)) return JSON.stringify(k);
  return ctx.fail('dict key of an unsupported type');
}

/** Set a dict entry as an own data property (a key "__proto__" cannot reach the prototype). */
function setKey(d: Record<string, unknown>, k: unknown, v: unknown, ctx: Ctx): void {
  Object.defineProperty(d, keyString(k, ctx), { value: v, enumerable: true, writable: true, configurable: true });
}

// ---- the VM ---------------------------------------------------------------------------------

const MARK = Symbol('mark');
const OPNAMES: Record<number, string> = {
  0x69: 'INST', 0x6f: 'OBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER', 0x53: 'STRING', 0x56: 'UNICODE',
};

export interface UnpickleOptions extends TorchReadOptions {
  /** Resolves BINPERSID / PERSID ids (PyTorch storages). Absent: persistent ids are an error. */
  persistentLoad?: (pid: unknown, ctx: Ctx) => unknown;
}

/** Run the restricted pickle VM over `data`. `source` names the file in error messages. */
export function unpickle(data: Uint8Array, source = '<pickle>', opts: UnpickleOptions = {}): unknown {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const stubMode = opts.unknownGlobals === 'stub';
  let pc = 0;
  let opAt = 0;
  const fail = (msg: string): never => {
    throw new FormatError(source, `pickle: ${msg} (opcode at byte ${opAt})`);
  };
  const call = (fn: unknown, args: unknown[]): unknown => {
    const ref = typeof fn === 'object' && fn !== null ? refDefs.get(fn) : undefined;
    if (ref === undefined) return fail('call of a value that is not a global');
    if (ref.def === undefined) {
      const stub: PickleStub = { __global__: ref.name, args };
      stubObjects.add(stub);
      return stub;
    }
    if (ref.def.call === undefined) return fail(`global "${ref.name}" is not callable here`);
    return ref.def.call(args, ctx);
  };
  const ctx: Ctx = { source, fail, call };

  const need = (n: number): number => {
    if (n < 0 || pc + n > data.byteLength) fail(`truncated pickle: needs ${n} bytes at offset ${pc}`);
    const p = pc;
    pc += n;
    return p;
  };
  const u8 = () => data[need(1)] as number;
  const u16 = () => dv.getUint16(need(2), true);
  const u32 = () => dv.getUint32(need(4), true);
  const u64 = (): number => {
    const v = dv.getBigUint64(need(8), true);
    if (v > BigInt(data.byteLength)) fail(`length ${v} exceeds the pickle size`);
    return Number(v);
  };
  const bytesOf = (n: number) => data.subarray(need(n), pc);
  const text = (n: number): string => {
    try {
      return utf8.decode(bytesOf(n));
    } catch {
      return fail('string is not valid UTF-8');
    }
  };
  const line = (): string => {
    const end = data.indexOf(0x0a, pc);
    if (end < 0) fail('truncated pickle: missing newline');
    return text(end - pc + 1).slice(0, -1);
  };
  const latin1 = (n: number): string => {
    const b = bytesOf(n);
    let s = '';
    for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode(...b.subarray(i, i + 4096));
    return s;
  };
  const longFrom = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i] as number);
    if ((b[b.length - 1] as number) & 0x80) v -= 1n << BigInt(8 * b.length);
    return intValue(v);
  };
  const intValue = (v: bigint): number | bigint =>
    v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;

  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= (marks[marks.length - 1] as number))) {
      fail('stack underflow');
    }
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) return fail('no MARK on the stack');
    return stack.splice(m);
  };
  const pushGlobal = (module: string, name: string): void => {
    const qual = `${module}.${name}`;
    if (module === 'torch' && Object.prototype.hasOwnProperty.call(TORCH_DTYPES, name)) {
      stack.push(`torch.${name}`); // a dtype object, kept as its name
      return;
    }
    const def = Object.prototype.hasOwnProperty.call(GLOBALS, qual) ? GLOBALS[qual] : undefined;
    if (def === undefined && !stubMode) {
      fail(`global "${qual}" is not allowed: only tensors, storages and plain containers can be ` +
        `loaded, nothing from the file is ever executed (pass unknownGlobals: 'stub' to keep it as an inert record)`);
    }
    const ref = { __global__: qual };
    refDefs.set(ref, { name: qual, def });
    stack.push(ref);
  };
  const dictTarget = (v: unknown): Record<string, unknown> => {
    if (typeof v !== 'object' || v === null || !dictObjects.has(v)) return fail('SETITEM(S) on a value that is not a dict');
    return v as Record<string, unknown>;
  };
  const persistent = (pid: unknown): void => {
    if (opts.persistentLoad === undefined) fail('persistent id without a loader');
    stack.push((opts.persistentLoad as NonNullable<UnpickleOptions['persistentLoad']>)(pid, ctx));
  };

  for (;;) {
    opAt = pc;
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const v = u8();
        if (v > 5) fail(`pickle protocol ${v} is not supported (0-5)`);
        break;
      }
      case 0x95: u64(); break; // FRAME (advisory)
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length !== 0) fail('STOP with an unbalanced stack');
        return stack[0];
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      // -- scalars
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(dv.getInt32(need(4), true)); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(longFrom(bytesOf(u8()))); break; // LONG1
      case 0x8b: { // LONG4
        const n = dv.getInt32(need(4), true);
        if (n < 0 || n > 1024) fail(`LONG4 of ${n} bytes is not supported (0-1024)`);
        stack.push(longFrom(bytesOf(n)));
        break;
      }
      case 0x47: stack.push(dv.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
      case 0x49: { // INT (text; I00 / I01 are False / True)
        const s = line();
        if (s === '00' || s === '01') stack.push(s === '01');
        else if (/^-?\d+$/.test(s)) stack.push(intValue(BigInt(s)));
        else fail(`bad INT ${JSON.stringify(s)}`);
        break;
      }
      case 0x4c: { // LONG (text)
        const s = line().replace(/L$/, '');
        if (!/^-?\d+$/.test(s)) fail(`bad LONG ${JSON.stringify(s)}`);
        stack.push(intValue(BigInt(s)));
        break;
      }
      case 0x46: { // FLOAT (text)
        const s = line();
        const v = Number(s);
        if (s.trim() === '' || Number.isNaN(v) && !/nan/i.test(s)) fail(`bad FLOAT ${JSON.stringify(s)}`);
        stack.push(v);
        break;
      }
      // -- strings and bytes
      case 0x58: stack.push(text(u32())); break; // BINUNICODE
      case 0x8c: stack.push(text(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(text(u64())); break; // BINUNICODE8
      case 0x54: { // BINSTRING (Python 2 str)
        const n = dv.getInt32(need(4), true);
        if (n < 0) fail('negative BINSTRING length');
        stack.push(latin1(n));
        break;
      }
      case 0x55: stack.push(latin1(u8())); break; // SHORT_BINSTRING
      case 0x42: stack.push(bytesOf(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(bytesOf(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: stack.push(bytesOf(u64()).slice()); break; // BINBYTES8
      case 0x96: stack.push(bytesOf(u64()).slice()); break; // BYTEARRAY8
      // -- containers
      case 0x7d: stack.push(newDict()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x8f: { // EMPTY_SET
        const s: unknown[] = [];
        setObjects.add(s);
        stack.push(s);
        break;
      }
      case 0x74: case 0x6c: case 0x91: stack.push(popMark()); break; // TUPLE, LIST, FROZENSET
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x64: { // DICT
        const items = popMark();
        if (items.length % 2 !== 0) fail('DICT with an odd number of items');
        const d = newDict();
        for (let i = 0; i < items.length; i += 2) setKey(d, items[i], items[i + 1], ctx);
        stack.push(d);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) fail('APPEND on a value that is not a list');
        (l as unknown[]).push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) fail('APPENDS on a value that is not a list');
        for (const v of items) (l as unknown[]).push(v);
        break;
      }
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (typeof s !== 'object' || s === null || !setObjects.has(s)) fail('ADDITEMS on a value that is not a set');
        for (const v of items) (s as unknown[]).push(v);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        setKey(dictTarget(top()), k, v, ctx);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        if (items.length % 2 !== 0) fail('SETITEMS with an odd number of items');
        const d = dictTarget(top());
        for (let i = 0; i < items.length; i += 2) setKey(d, items[i], items[i + 1], ctx);
        break;
      }
      // -- memo
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x70: memo.set(Number(line()), top()); break; // PUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: case 0x67: { // BINGET, LONG_BINGET, GET
        const i = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(i)) fail(`memo key ${i} is not defined`);
        stack.push(memo.get(i));
        break;
      }
      // -- globals and calls (restricted)
      case 0x63: { // GLOBAL "module\nname\n"
        const module = line();
        pushGlobal(module, line());
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        pushGlobal(module as string, name as string);
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        if (!Array.isArray(args)) fail('REDUCE arguments are not a tuple');
        stack.push(call(fn, args as unknown[]));
        break;
      }
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        const cls = pop();
        if (!Array.isArray(args)) fail('NEWOBJ arguments are not a tuple');
        stack.push(call(cls, args as unknown[]));
        break;
      }
      case 0x92: { // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!Array.isArray(args)) fail('NEWOBJ_EX arguments are not a tuple');
        const r = call(cls, args as unknown[]);
        if (stubObjects.has(r as object)) (r as PickleStub & { kwargs?: unknown }).kwargs = kwargs;
        stack.push(r);
        break;
      }
      case 0x62: { // BUILD: obj.__setstate__(state) — only recorded, never executed
        const state = pop();
        const obj = top();
        if (typeof obj === 'object' && obj !== null && stubObjects.has(obj)) (obj as PickleStub).state = state;
        else if (typeof obj === 'object' && obj !== null && (dictObjects.has(obj) || isRawTensor(obj))) {
          // OrderedDict attributes (state_dict `_metadata`) and tensor attributes are dropped.
        } else fail('BUILD on a value that has no state');
        break;
      }
      case 0x51: persistent(pop()); break; // BINPERSID
      case 0x50: persistent(line()); break; // PERSID
      default:
        fail(`opcode ${OPNAMES[op] ?? `0x${op.toString(16).padStart(2, '0')}`} is not supported`);
    }
  }
}

// ---- checkpoints ----------------------------------------------------------------------------

const LEGACY_MESSAGE = 'legacy torch.save format is not supported; re-save with ' +
  'torch.save(..., _use_new_zipfile_serialization=True)';

/**
 * Read a `torch.save` zip checkpoint held in memory into a plain value tree (see file header).
 * `source` names the file in error messages.
 */
export function readTorchCheckpoint(bytes: Uint8Array, source = '<bytes>', options: TorchReadOptions = {}): unknown {
  if (!looksLikeZip(bytes)) {
    const tar = bytes.byteLength > 262 && new TextDecoder().decode(bytes.subarray(257, 262)) === 'ustar';
    if (bytes[0] === 0x80 || tar) throw new FormatError(source, LEGACY_MESSAGE);
    throw new FormatError(source, 'not a PyTorch checkpoint: expected a torch.save zip archive');
  }
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
    if (bo !== 'little') throw new FormatError(source, `byteorder "${bo}" is not supported (only little-endian)`);
  }
  const storages = new Map<string, TorchStorage>();
  const persistentLoad = (pid: unknown, ctx: Ctx): TorchStorage => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 3) {
      return ctx.fail(`persistent id ${JSON.stringify(pid) ?? String(pid)} is not a storage reference`);
    }
    const [, cls, key] = pid as [string, unknown, unknown];
    const ref = typeof cls === 'object' && cls !== null ? refDefs.get(cls) : undefined;
    const kind = ref?.def?.storage;
    if (kind === undefined) return ctx.fail(`storage class ${ref?.name ?? String(cls)} is not supported`);
    if (typeof key !== 'string') return ctx.fail('storage key is not a string');
    const seen = storages.get(key);
    if (seen !== undefined) return seen;
    const e = entry(`data/${key}`);
    if (e === undefined) return ctx.fail(`storage "${key}" has no entry "${prefix}data/${key}"`);
    const data = readZipEntry(bytes, e, source);
    if (kind !== 'untyped' && data.byteLength % ST_DTYPES[kind].size !== 0) {
      return ctx.fail(`storage "${key}" holds ${data.byteLength} bytes, not a whole number of ${kind} elements`);
    }
    const s = new TorchStorage(key, data, kind);
    storages.set(key, s);
    return s;
  };
  const pklName = pkls[0] as string;
  const pkl = readZipEntry(bytes, dir.get(pklName) as ZipEntry, source);
  return unpickle(pkl, `${source}:${pklName}`, { ...options, persistentLoad });
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && !isRawTensor(v);
}

/**
 * The tensors of a checkpoint tree: `tree.state_dict` (Lightning checkpoints) or the tree itself
 * when it is a mapping of tensors (`torch.save(model.state_dict())`). With `prefix`, only keys
 * starting with it are kept, with the prefix removed (`'model.diffusion_model.'`).
 */
export function extractStateDict(tree: unknown, prefix = ''): Map<string, RawTensor> {
  const fail = (msg: string): never => {
    throw new FormatError('<checkpoint>', msg);
  };
  let sd: Record<string, unknown>;
  if (isMapping(tree) && isMapping(tree['state_dict'])) sd = tree['state_dict'];
  else if (isMapping(tree) && Object.values(tree).some(isRawTensor)) sd = tree;
  else {
    const keys = isMapping(tree) ? Object.keys(tree).slice(0, 20).join(', ') : typeof tree;
    return fail(`no state_dict found: expected a "state_dict" entry or a mapping of tensors, got {${keys}} ` +
      '(pass the sub-tree that holds the tensors, e.g. tree.ema_model)');
  }
  const out = new Map<string, RawTensor>();
  for (const [k, v] of Object.entries(sd)) {
    if (!k.startsWith(prefix)) continue;
    if (!isRawTensor(v)) return fail(`state_dict entry "${k}" is not a tensor`);
    out.set(k.slice(prefix.length), v);
  }
  if (out.size === 0 && prefix !== '') {
    return fail(`no state_dict key starts with "${prefix}" (first keys: ${Object.keys(sd).slice(0, 5).join(', ')})`);
  }
  return out;
}
