// pickle: a RESTRICTED Python unpickler. It interprets the data opcodes of pickle protocols 0-5
// (containers, numbers, strings, bytes, memo, marks, persistent ids) and resolves GLOBAL /
// STACK_GLOBAL only through the caller's allow-list (`resolveGlobal`): an allowed global is a
// JS function of ours, never anything named by the file. REDUCE / NEWOBJ call those functions,
// BUILD records state. Any other global throws FormatError naming it, or with
// `unknownGlobals: 'stub'` becomes an inert `{ __global__, args, state }` record.
// Output: dicts as plain objects (keys set as own properties), lists / tuples / sets as arrays,
// ints as numbers (bigint beyond 2^53), floats, strings, booleans, null, bytes as Uint8Array.
// It is not a pickler, does not know PyTorch (torch-pickle.ts supplies the torch allow-list),
// and rejects INST / OBJ / EXT* / out-of-band buffers.
// Cost is bounded by the input: every container item and every byte an allow-listed function
// allocates is charged against a budget (UnpickleOptions.byteBudget, default a fixed multiple of
// the pickle's size), so a few hundred bytes cannot ask for gigabytes (memo reuse, repeated
// OrderedDict / set calls, strided tensor gathers); text integers are capped at 4096 digits.

import { clip, describe } from '../util/index.ts';
import { FormatError } from './errors.ts';

export type UnknownGlobals = 'error' | 'stub';

/** What a non-allow-listed global becomes with `unknownGlobals: 'stub'`. */
export interface PickleStub {
  __global__: string;
  args?: unknown[];
  kwargs?: unknown;
  state?: unknown;
}

export interface PickleCtx {
  source: string;
  /** Throw FormatError naming the file and the opcode offset. */
  fail: (msg: string) => never;
  /** Call an allow-listed global value (as found in the pickle) with arguments. */
  call: (fn: unknown, args: unknown[]) => unknown;
  /** Count `bytes` against the allocation budget; fails (naming `what`) when it is spent. */
  charge: (bytes: number, what: string) => void;
}

/** Bytes charged per container item (a JS slot plus its share of the container). */
export const ITEM_COST = 16;
/** The default allocation budget of a pickle of n bytes. */
export const defaultPickleBudget = (n: number): number => 1024 * 1024 + 64 * n;

/** An allow-listed global: `value` is pushed as is; otherwise a reference, callable with `call`. */
export type GlobalDef =
  | { value: unknown }
  | { call?: (args: unknown[], ctx: PickleCtx) => unknown };

export interface UnpickleOptions {
  /** The allow-list: a definition for `module.name`, or undefined when it is not allowed. */
  resolveGlobal?: (module: string, name: string) => GlobalDef | undefined;
  /** Resolves BINPERSID / PERSID ids. Absent: persistent ids are an error. */
  persistentLoad?: (pid: unknown, ctx: PickleCtx) => unknown;
  /** Default 'error'. */
  unknownGlobals?: UnknownGlobals;
  /** Most bytes the VM and the allow-listed functions may allocate (default defaultPickleBudget). */
  byteBudget?: number;
}

// Objects the VM made, by kind (identity sets: the output itself stays plain).
const dictObjects = new WeakSet<object>();
const setObjects = new WeakSet<object>();
const refDefs = new WeakMap<object, { name: string; def: { call?: (args: unknown[], ctx: PickleCtx) => unknown } | undefined }>();
const stubObjects = new WeakSet<object>();
const madeByCall = new WeakSet<object>();

/** A new Python dict (an object that SETITEM(S) may fill). */
export function newDict(): Record<string, unknown> {
  const d: Record<string, unknown> = {};
  dictObjects.add(d);
  return d;
}

/** The `module.name` of a global reference produced by the VM (undefined for other values). */
export function globalName(v: unknown): string | undefined {
  return typeof v === 'object' && v !== null ? refDefs.get(v)?.name : undefined;
}

/** Python dict key → JS property name: str as is, int / float / bool / None as Python prints them. */
function keyString(k: unknown, ctx: PickleCtx): string {
  if (typeof k === 'string') return k;
  if (typeof k === 'number' || typeof k === 'bigint') return String(k);
  if (typeof k === 'boolean') return k ? 'True' : 'False';
  if (k === null) return 'None';
  if (Array.isArray(k) && k.every((x) => typeof x !== 'object' || x === null)) {
    // a tuple key, printed JSON-style; never JSON.stringify (BigInts throw there)
    return `[${k.map((x) => (typeof x === 'string' ? JSON.stringify(x) : typeof x === 'bigint' ? x.toString() : String(x))).join(',')}]`;
  }
  return ctx.fail('dict key of an unsupported type');
}

/** Set a dict entry as an own data property (a key "__proto__" cannot reach the prototype). */
export function setDictItem(d: Record<string, unknown>, k: unknown, v: unknown, ctx: PickleCtx): void {
  Object.defineProperty(d, keyString(k, ctx), { value: v, enumerable: true, writable: true, configurable: true });
}

// ---- the VM ---------------------------------------------------------------------------------

const OPNAMES: Record<number, string> = {
  0x69: 'INST', 0x6f: 'OBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER', 0x53: 'STRING', 0x56: 'UNICODE',
};

/** Run the restricted pickle VM over `data`. `source` names the file in error messages. */
export function unpickle(data: Uint8Array, source = '<pickle>', opts: UnpickleOptions = {}): unknown {
  return unpickleAt(data, 0, source, opts).value;
}

/**
 * Run the VM over the pickle that starts at byte `start` of `data` (files that hold several
 * pickles in a row, as the legacy torch.save format does). `end` is the offset after its STOP.
 */
export function unpickleAt(data: Uint8Array, start: number, source = '<pickle>', opts: UnpickleOptions = {}): { value: unknown; end: number } {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const stubMode = opts.unknownGlobals === 'stub';
  let pc = start;
  let opAt = start;
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
    const r = ref.def.call(args, ctx);
    if (typeof r === 'object' && r !== null) madeByCall.add(r);
    return r;
  };
  let budget = opts.byteBudget ?? defaultPickleBudget(data.byteLength);
  const charge = (bytes: number, what: string): void => {
    budget -= bytes;
    if (!(budget >= 0)) {
      fail(`${what} would take the allocations of this pickle past ${opts.byteBudget ?? defaultPickleBudget(data.byteLength)} bytes, ` +
        'more than the file can honestly describe');
    }
  };
  const ctx: PickleCtx = { source, fail, call, charge };
  const items = (n: number, what: string): void => charge(n * ITEM_COST, what);

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
    const b = bytesOf(n);
    try {
      return utf8.decode(b);
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
    const def = opts.resolveGlobal?.(module, name);
    if (def !== undefined && 'value' in def) {
      stack.push(def.value);
      return;
    }
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
        return { value: stack[0], end: pc };
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
        if (s.length > 4096) fail(`INT of ${s.length} digits is too long (at most 4096)`);
        if (s === '00' || s === '01') stack.push(s === '01');
        else if (/^-?\d+$/.test(s)) stack.push(intValue(BigInt(s)));
        else fail(`bad INT ${describe(s)}`);
        break;
      }
      case 0x4c: { // LONG (text)
        const s = line().replace(/L$/, '');
        if (s.length > 4096) fail(`LONG of ${s.length} digits is too long (at most 4096)`);
        if (!/^-?\d+$/.test(s)) fail(`bad LONG ${describe(s)}`);
        stack.push(intValue(BigInt(s)));
        break;
      }
      case 0x46: { // FLOAT (text)
        const s = line();
        const v = Number(s);
        if (s.trim() === '' || Number.isNaN(v) && !/nan/i.test(s)) fail(`bad FLOAT ${describe(s)}`);
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
        charge(items.length * ITEM_COST, 'DICT');
        for (let i = 0; i < items.length; i += 2) setDictItem(d, items[i], items[i + 1], ctx);
        stack.push(d);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) fail('APPEND on a value that is not a list');
        items(1, 'APPEND');
        (l as unknown[]).push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items_ = popMark();
        const l = top();
        if (!Array.isArray(l)) fail('APPENDS on a value that is not a list');
        items(items_.length, 'APPENDS');
        for (const v of items_) (l as unknown[]).push(v);
        break;
      }
      case 0x90: { // ADDITEMS
        const add = popMark();
        const s = top();
        if (typeof s !== 'object' || s === null || !setObjects.has(s)) fail('ADDITEMS on a value that is not a set');
        items(add.length, 'ADDITEMS');
        for (const v of add) (s as unknown[]).push(v);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        items(2, 'SETITEM');
        setDictItem(dictTarget(top()), k, v, ctx);
        break;
      }
      case 0x75: { // SETITEMS
        const kv = popMark();
        if (kv.length % 2 !== 0) fail('SETITEMS with an odd number of items');
        const d = dictTarget(top());
        items(kv.length, 'SETITEMS');
        for (let i = 0; i < kv.length; i += 2) setDictItem(d, kv[i], kv[i + 1], ctx);
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
        else if (typeof obj === 'object' && obj !== null && (dictObjects.has(obj) || madeByCall.has(obj))) {
          // Python attributes of dicts (state_dict `_metadata`) and of allow-listed results are dropped.
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

