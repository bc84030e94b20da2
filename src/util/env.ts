// Process environment read in one place: the backend choice and the debug level.

export function envString(name: string): string | undefined {
  const v = typeof process !== 'undefined' ? process.env[name] : undefined;
  return v === undefined || v === '' ? undefined : v;
}

/** LDM_BACKEND=reference|native (default: native when built). */
export function requestedBackend(): 'reference' | 'native' | undefined {
  const v = envString('LDM_BACKEND');
  if (v === undefined) return undefined;
  if (v !== 'reference' && v !== 'native') {
    throw new Error(`LDM_BACKEND must be 'reference' or 'native', got '${v}'`);
  }
  return v;
}

export const DEBUG = Number(envString('DEBUG') ?? '0');
