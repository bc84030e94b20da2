// The error type of the formats layer: a file's bytes are not what the format promises.
// It is not for I/O failures (io/ reports those) nor for programming errors (plain Error).
// Messages start with the file (the `source` passed to the parser) and name the key / offset at
// fault and what was expected.

import { LdmError } from '../util/index.ts';

export class FormatError extends LdmError {
  /** The file (or '<bytes>') the error is about. */
  readonly source: string;
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.source = source;
  }
}
