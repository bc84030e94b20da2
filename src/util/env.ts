// Process environment read in one place: the backend choice and the debug level.

export function envString(name: string): string | undefined {
  const v = typeof process !== 'undefined' ? process.env[name] : undefined;
  return v === undefined || v === '' ? undefined : v;
}

/** The compute backends: reference (plain TS), native (oneDNN addon), wasm (WebAssembly SIMD). */
export type BackendName = 'reference' | 'native' | 'wasm';

/** LDM_BACKEND=reference|native|wasm (default: native when built). */
export function requestedBackend(): BackendName | undefined {
  const v = envString('LDM_BACKEND');
  if (v === undefined) return undefined;
  if (v !== 'reference' && v !== 'native' && v !== 'wasm') {
    throw new Error(`LDM_BACKEND must be 'reference', 'native' or 'wasm', got '${v}'`);
  }
  return v;
}

export const DEBUG = Number(envString('DEBUG') ?? '0');
