// Error classes of ldm.ts. Every message names the thing at fault (file, key, shape) and what
// was expected, so a user can fix the input without reading our code.

export class LdmError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A tensor shape that does not fit the operation. */
export class ShapeError extends LdmError {}

/** Which configuration key is at fault, as data (callers re-address it, e.g. to a config path). */
export interface ConfigKeyIssue {
  /** 'unknown': the key is not a parameter; 'invalid': its value is not what the parameter takes */
  kind: 'unknown' | 'invalid';
  key: string;
  /** the closest valid key (unknown keys) */
  suggestion?: string | undefined;
}

/** A configuration key or value that is not valid; `issue` names the key when there is one. */
export class ConfigError extends LdmError {
  constructor(message: string, readonly issue?: ConfigKeyIssue) {
    super(message);
  }
}

/** A state dict (checkpoint) that does not match the module. */
export class StateDictError extends LdmError {}

/** An unreadable or malformed input file. */
export class InputFileError extends LdmError {}

/** A file or folder that cannot be written (missing or non-folder parent, a folder in the way, disk full). */
export class OutputFileError extends LdmError {}

export function assert(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new LdmError(typeof message === 'string' ? message : message());
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
