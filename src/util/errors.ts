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

/** A configuration key or value that is not valid. */
export class ConfigError extends LdmError {}

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
