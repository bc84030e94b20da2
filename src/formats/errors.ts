// The error type of the formats layer: a file's bytes are not what the format promises.
// It is not for I/O failures (io/ reports those) nor for programming errors (plain Error).
// Messages name the file (the `source` passed to the parser), the key / offset at fault, and what
// was expected. Defined locally because formats[1] imports only util[0]; when util/errors.ts
// grows an `LdmError` base, FormatError can extend it without changing callers.

export class FormatError extends Error {
  override readonly name = 'FormatError';
  /** The file (or '<bytes>') the error is about. */
  readonly source: string;
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.source = source;
  }
}
