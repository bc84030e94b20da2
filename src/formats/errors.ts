// The error type of the formats layer: a file's bytes are not what the format promises.
// It is not for I/O failures (io/ reports those) nor for programming errors (plain Error).
// Messages start with the file (the `source` passed to the parser) and name the key / offset at
// fault and what was expected; values from the file are shown through describe() (bounded, never
// throws) and the whole message is cut at MAX_MESSAGE characters.

import { LdmError, clip } from '../util/index.ts';

/** Longest message detail kept (values in it are already cut by describe()). */
export const MAX_MESSAGE = 500;

export class FormatError extends LdmError {
  /** The file (or '<bytes>') the error is about. */
  readonly source: string;
  constructor(source: string, message: string) {
    super(`${clip(source, 300)}: ${clip(message, MAX_MESSAGE)}`);
    this.source = source;
  }
}
