// torch-legacy: read the legacy `torch.save(..., _use_new_zipfile_serialization=False)` format
// (the default before PyTorch 1.6, still met in model zoos) with the same RESTRICTED unpickler and
// allow-list as the zip reader: nothing from the file is imported, evaluated or called.
// Layout (torch/serialization.py `_legacy_save`), all in one stream:
//   1. pickle(MAGIC_NUMBER = 0x1950a86a20f9469cfc6c)   2. pickle(PROTOCOL_VERSION = 1001)
//   3. pickle(sys_info = {protocol_version, little_endian, type_sizes})
//   4. the object pickle; each storage is a persistent id
//      ('storage', StorageClass, root_key, location, numel, view_metadata | None)
//   5. pickle(sorted list of root storage keys)
//   6. for each key of that list: int64 LE element count, then count × element size raw bytes.
// Storage data follows the pickle that references it, so the object pickle is run twice: once
// with inert tensor rebuilders to learn its storages and its end, then for real.
// It is not: the pre-1.0 tar format, pickled module sources ('module' ids), big-endian files —
// each refused with one line.

import { FormatError } from './errors.ts';
import { newDict, unpickleAt, type GlobalDef, type PickleCtx, type UnknownGlobals } from './pickle.ts';
import { ST_DTYPES, type StDtype } from './safetensors.ts';
import { TorchStorage, resolveTorchGlobal, storageKind } from './torch-pickle.ts';

const MAGIC = 0x1950a86a20f9469cfc6cn;
const PROTOCOL_VERSION = 1001;

/** A storage reference as the object pickle declares it. */
interface StorageDecl {
  kind: StDtype | 'untyped';
  key: string;
  numel: number;
  /** a view of the root storage: (view key, offset, size) in elements */
  view: { key: string; offset: number; size: number } | null;
}

const elementSize = (kind: StDtype | 'untyped'): number => (kind === 'untyped' ? 1 : ST_DTYPES[kind].size);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function parsePid(pid: unknown, ctx: PickleCtx): StorageDecl {
  if (!Array.isArray(pid) || pid.length < 1) return ctx.fail('persistent id is not a tuple');
  if (pid[0] === 'module') return ctx.fail('the file pickles a whole nn.Module with its source code; only state dicts and plain containers are supported');
  if (pid[0] !== 'storage' || pid.length !== 6) return ctx.fail(`persistent id of kind ${typeof pid[0] === 'string' ? `"${pid[0].slice(0, 40)}"` : typeof pid[0]} is not a legacy storage reference`);
  const [, cls, key, , numel, view] = pid as unknown[];
  const kind = storageKind(cls);
  if (kind === undefined) return ctx.fail('storage class is not a known torch storage type');
  if (typeof key !== 'string') return ctx.fail('storage key is not a string');
  if (!isCount(numel)) return ctx.fail(`storage "${key.slice(0, 40)}": element count is not a non-negative integer`);
  if (view === null) return { kind, key, numel, view: null };
  if (!Array.isArray(view) || view.length !== 3 || typeof view[0] !== 'string' || !isCount(view[1]) || !isCount(view[2])) {
    return ctx.fail(`storage "${key.slice(0, 40)}": view metadata is not (key, offset, size)`);
  }
  return { kind, key, numel, view: { key: view[0], offset: view[1], size: view[2] } };
}

/** True when the bytes start like a legacy torch.save file (a pickle of the magic number). */
export function looksLikeLegacyTorch(bytes: Uint8Array): boolean {
  if (bytes[0] !== 0x80) return false;
  try {
    return unpickleAt(bytes.subarray(0, 64), 0).value === MAGIC;
  } catch {
    return false;
  }
}

/**
 * Read a legacy torch.save file held in memory into the same plain value tree as the zip reader.
 * `source` names the file in error messages.
 */
export function readLegacyTorchCheckpoint(bytes: Uint8Array, source: string, unknownGlobals: UnknownGlobals = 'error'): unknown {
  const fail = (msg: string): never => {
    throw new FormatError(source, `legacy torch.save: ${msg}`);
  };
  // 1-3. magic, protocol version, sys_info (plain pickles: no globals allowed)
  const header = (start: number, what: string): { value: unknown; end: number } => {
    if (start >= bytes.byteLength) return fail(`file ends before the ${what}`);
    return unpickleAt(bytes, start, `${source} (legacy torch.save ${what})`);
  };
  const magic = header(0, 'magic number');
  if (magic.value !== MAGIC) return fail('magic number is wrong (not a torch.save file, or corrupt)');
  const proto = header(magic.end, 'protocol version');
  if (proto.value !== PROTOCOL_VERSION) return fail(`protocol version ${typeof proto.value === 'number' ? proto.value : '?'} is not ${PROTOCOL_VERSION}`);
  const sys = header(proto.end, 'sys_info');
  const info = sys.value as Record<string, unknown> | null;
  if (typeof info !== 'object' || info === null || Array.isArray(info)) return fail('sys_info is not a dict');
  if (info['little_endian'] !== true) return fail('the file was written on a big-endian machine; only little-endian files are supported');

  // 4a. first pass: which storages does the object pickle reference, and where does it end?
  const declared = new Map<string, StorageDecl>();
  const inert: GlobalDef = { call: () => newDict() };
  const scan = unpickleAt(bytes, sys.end, source, {
    unknownGlobals,
    resolveGlobal: (module, name) => {
      const def = resolveTorchGlobal(module, name);
      // tensor rebuilders must not run yet: the storages' bytes come after this pickle
      return def !== undefined && (module === 'torch._utils' || module === 'torch._tensor') ? inert : def;
    },
    persistentLoad: (pid, ctx) => {
      const d = parsePid(pid, ctx);
      const seen = declared.get(d.key);
      if (seen !== undefined && (seen.kind !== d.kind || seen.numel !== d.numel)) {
        return ctx.fail(`storage "${d.key.slice(0, 40)}" is declared twice with different types or sizes`);
      }
      declared.set(d.key, d);
      return newDict();
    },
  });

  // 5. the storage keys, in the order their data follows
  const keysP = header(scan.end, 'storage key list');
  const keys = keysP.value;
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) return fail('the storage key list is not a list of strings');

  // 6. raw storages: int64 element count, then the bytes
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const storages = new Map<string, TorchStorage>();
  let off = keysP.end;
  for (const key of keys as string[]) {
    const d = declared.get(key);
    if (d === undefined) return fail(`storage "${key.slice(0, 40)}" is listed but no tensor refers to it`);
    if (storages.has(key)) return fail(`storage "${key.slice(0, 40)}" is listed twice`);
    if (off + 8 > bytes.byteLength) return fail(`file ends before the size of storage "${key.slice(0, 40)}" (offset ${off})`);
    const count = dv.getBigInt64(off, true);
    if (count !== BigInt(d.numel)) return fail(`storage "${key.slice(0, 40)}" holds ${count} elements, its tensors declare ${d.numel}`);
    const n = d.numel * elementSize(d.kind);
    if (!Number.isSafeInteger(n) || off + 8 + n > bytes.byteLength) {
      return fail(`storage "${key.slice(0, 40)}" needs ${n} bytes at offset ${off + 8}, the file has ${bytes.byteLength - off - 8} left (truncated?)`);
    }
    storages.set(key, new TorchStorage(key, bytes.subarray(off + 8, off + 8 + n), d.kind));
    off += 8 + n;
  }
  if (off !== bytes.byteLength) return fail(`${bytes.byteLength - off} unexpected bytes after the last storage`);
  for (const d of declared.values()) {
    if (!storages.has(d.key)) return fail(`storage "${d.key.slice(0, 40)}" is referenced but its data is not in the file`);
  }

  // 4b. second pass: the real object tree over the loaded storages
  const views = new Map<string, TorchStorage>();
  const persistentLoad = (pid: unknown, ctx: PickleCtx): TorchStorage => {
    const d = parsePid(pid, ctx);
    const root = storages.get(d.key) as TorchStorage;
    if (d.view === null) return root;
    const es = elementSize(d.kind);
    const { key, offset, size } = d.view;
    if (offset + size > d.numel) return ctx.fail(`storage view "${key.slice(0, 40)}" [${offset}, ${offset + size}) lies outside its root's ${d.numel} elements`);
    let v = views.get(key);
    if (v === undefined) {
      v = new TorchStorage(key, root.bytes.subarray(offset * es, (offset + size) * es), d.kind);
      views.set(key, v);
    }
    return v;
  };
  return unpickleAt(bytes, sys.end, source, { unknownGlobals, resolveGlobal: resolveTorchGlobal, persistentLoad }).value;
}
