// Kernel dispatch: the active backend is a partial backend's kernels (the native addon, or the
// WebAssembly SIMD kernels) laid over the reference ones, so any kernel it lacks falls back to the
// reference (ggml `supports_op`). Choose with LDM_BACKEND=reference|native|wasm or setBackend();
// default: native when it is built. In a browser there is no addon: call setBackend('reference')
// or (after backend.initWasm()) setBackend('wasm') before the first op.

import { reference, loadNative, loadWasm, nativeInfo, profileKernels, setNativePrecision, type KernelCall, type Kernels } from '../backend/index.ts';
import { envString, requestedBackend, type BackendName } from '../util/index.ts';

let active: Kernels | null = null;
let activeName: BackendName = 'reference';
let nativeNote: string | null = null;
/** The unwrapped kernels while a profile is being recorded. */
let unprofiled: Kernels | null = null;

function warn(msg: string): void {
  if (typeof process !== 'undefined' && typeof process.emitWarning === 'function') process.emitWarning(msg);
  else console.warn(msg);
}

function compose(name: BackendName): Kernels {
  if (name === 'reference') return reference;
  const nat = name === 'wasm' ? loadWasm() : loadNative();
  if (!nat) {
    if (nativeNote === null) {
      nativeNote = name === 'wasm'
        ? 'ldm.ts: this engine has no WebAssembly SIMD; using the reference backend'
        : `ldm.ts: native backend unavailable (${nativeInfo().reason ?? 'addon not built'}); using the reference backend`;
      warn(nativeNote);
    }
    activeName = 'reference';
    return reference;
  }
  const merged: Record<string, unknown> = { ...reference };
  // LDM_NATIVE_DISABLE=conv2d,attention keeps those kernels on the reference (a debugging aid).
  const disabled = new Set((envString('LDM_NATIVE_DISABLE') ?? '').split(',').filter(Boolean));
  for (const [k, v] of Object.entries(nat)) if (v !== undefined && !disabled.has(k)) merged[k] = v;
  merged['name'] = name;
  return merged as unknown as Kernels; // every Kernels key: the reference backend's, overridden per op above
}

/** The kernels of the active backend. */
export function K(): Kernels {
  if (active === null) {
    activeName = requestedBackend() ?? 'native';
    active = compose(activeName);
    if (active.name === 'reference') activeName = 'reference';
  }
  return active;
}

/** Switch backend for the rest of the process (tests run every op on every backend). */
export function setBackend(name: BackendName): BackendName {
  unprofiled = null;
  activeName = name;
  active = compose(name);
  if (active.name === 'reference') activeName = 'reference';
  return activeName;
}

export function backendName(): BackendName {
  K();
  return activeName;
}

/** Whether the native addon is built and loadable here. */
export function nativeAvailable(): boolean {
  return loadNative() !== null;
}

/** Start recording every kernel call (time, bytes, flop) into the returned array, until
 *  stopProfile(). For `ldm bench --profile`; the wrapper adds a little time per call. */
export function startProfile(): KernelCall[] {
  const sink: KernelCall[] = [];
  const base = unprofiled ?? K();
  unprofiled = base;
  active = profileKernels(base, sink);
  return sink;
}

/** Stop recording kernel calls (a no-op when no profile runs). */
export function stopProfile(): void {
  if (unprofiled) active = unprofiled;
  unprofiled = null;
}

export type Precision = 'fp32' | 'bf16';

/** Why the last setPrecision('bf16') ran in fp32 instead, or null when it did not fall back. */
let precisionNote: string | null = null;
/** Whether the last setPrecision('bf16') emulates bf16 (LDM_BF16_EMULATE=1). */
let emulated = false;

/** Mixed precision for the rest of the process, like torch.autocast('cpu', torch.bfloat16):
 *  with 'bf16' the native convolutions multiply in bf16 (oneDNN on avx512_bf16 / AMX) while
 *  every tensor stays float32 (master weights, activations, norms, losses, optimiser state).
 *  Where that is not possible (the reference backend, or a CPU without native bf16) it stays
 *  fp32 and precisionFallback() says why. With LDM_BF16_EMULATE=1 the native backend emulates
 *  bf16 on any CPU instead (precisionEmulated()): bf16's rounding at fp32 speed or below, for
 *  checking what bf16 does to training where the CPU lacks it. Returns the precision in effect. */
export function setPrecision(p: Precision): Precision {
  precisionNote = null;
  emulated = false;
  if (p === 'fp32') { if (nativeAvailable()) setNativePrecision('fp32'); return 'fp32'; }
  if (backendName() !== 'native') {
    precisionNote = `bf16 needs the native backend (active: ${backendName()}); running in fp32`;
    return 'fp32';
  }
  const emulate = envString('LDM_BF16_EMULATE');
  if (emulate !== undefined && emulate !== '0' && emulate !== '1') throw new Error(`LDM_BF16_EMULATE must be 0 or 1, got '${emulate}'`);
  const got = setNativePrecision(emulate === '1' ? 'bf16-emulated' : 'bf16');
  if (got === 'bf16-emulated') { emulated = true; return 'bf16'; }
  if (got !== 'bf16') precisionNote = 'this CPU has no native bf16 (avx512_bf16) for oneDNN; running in fp32 (LDM_BF16_EMULATE=1 emulates its rounding, not its speed)';
  return got;
}

/** True when the bf16 in effect is emulated (LDM_BF16_EMULATE=1): bf16 numerics, not bf16 speed. */
export function precisionEmulated(): boolean {
  return emulated;
}

/** The reason the last bf16 request fell back to fp32, or null. */
export function precisionFallback(): string | null {
  return precisionNote;
}
