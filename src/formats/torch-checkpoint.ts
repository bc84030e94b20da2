// `torch.save` checkpoints in any format we read: the zip archive (torch-pickle.ts) or the legacy
// pre-1.6 stream (torch-legacy.ts), told apart by their first bytes. Both readers run the same
// restricted unpickler; this file only dispatches (and names the formats we refuse).

import { FormatError } from './errors.ts';
import { readLegacyTorchCheckpoint } from './torch-legacy.ts';
import { readZipTorchCheckpoint, type TorchReadOptions } from './torch-pickle.ts';
import { looksLikeZip } from './zip.ts';

/**
 * Read a `torch.save` checkpoint held in memory (zip archive, or the legacy format) into a plain
 * value tree (torch-pickle.ts header). `source` names the file in error messages.
 */
export function readTorchCheckpoint(bytes: Uint8Array, source = '<bytes>', options: TorchReadOptions = {}): unknown {
  if (looksLikeZip(bytes)) return readZipTorchCheckpoint(bytes, source, options);
  const tar = bytes.byteLength > 262 && new TextDecoder().decode(bytes.subarray(257, 262)) === 'ustar';
  if (tar) {
    throw new FormatError(source, 'the pre-1.0 tar torch.save format is not supported; load and re-save it with a current PyTorch');
  }
  if (bytes[0] === 0x80) return readLegacyTorchCheckpoint(bytes, source, options.unknownGlobals);
  throw new FormatError(source, 'not a PyTorch checkpoint: expected a torch.save zip archive or the legacy torch.save format');
}
