// Kernel dispatch: the active backend is the native addon's kernels laid over the reference
// ones, so any kernel the native backend lacks falls back to the reference (ggml `supports_op`).
// Choose with LDM_BACKEND=reference|native or setBackend(); default: native when it is built.

import { reference, loadNative, nativeInfo, profileKernels, type KernelCall, type Kernels } from '../backend/index.ts';
import { envString, requestedBackend } from '../util/index.ts';

let active: Kernels | null = null;
let activeName: 'reference' | 'native' = 'reference';
let nativeNote: string | null = null;
/** The unwrapped kernels while a profile is being recorded. */
let unprofiled: Kernels | null = null;

function compose(name: 'reference' | 'native'): Kernels {
  if (name === 'reference') return reference;
  const nat = loadNative();
  if (!nat) {
    if (nativeNote === null) {
      nativeNote = `ldm.ts: native backend unavailable (${nativeInfo().reason ?? 'addon not built'}); using the reference backend`;
      process.emitWarning(nativeNote);
    }
    activeName = 'reference';
    return reference;
  }
  const merged: Record<string, unknown> = { ...reference };
  // LDM_NATIVE_DISABLE=conv2d,attention keeps those kernels on the reference (a debugging aid).
  const disabled = new Set((envString('LDM_NATIVE_DISABLE') ?? '').split(',').filter(Boolean));
  for (const [k, v] of Object.entries(nat)) if (v !== undefined && !disabled.has(k)) merged[k] = v;
  merged['name'] = 'native';
  return merged as unknown as Kernels;
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
export function setBackend(name: 'reference' | 'native'): 'reference' | 'native' {
  unprofiled = null;
  activeName = name;
  active = compose(name);
  if (active.name === 'reference') activeName = 'reference';
  return activeName;
}

export function backendName(): 'reference' | 'native' {
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
