// Kernel dispatch: the active backend is a partial backend's kernels (the native addon, or the
// WebAssembly SIMD kernels) laid over the reference ones, so any kernel it lacks falls back to the
// reference (ggml `supports_op`). Choose with LDM_BACKEND=reference|native|wasm or setBackend();
// default: native when it is built. In a browser there is no addon: call setBackend('reference')
// or (after backend.initWasm()) setBackend('wasm') before the first op.

import { reference, loadNative, loadWasm, nativeInfo, type Kernels } from '../backend/index.ts';
import { envString, requestedBackend, type BackendName } from '../util/index.ts';

let active: Kernels | null = null;
let activeName: BackendName = 'reference';
let nativeNote: string | null = null;

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
export function setBackend(name: BackendName): BackendName {
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
