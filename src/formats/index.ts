// formats/ (rank 1): byte-level readers and writers that produce plain {dtype, shape, data}
// records, never Tensors: safetensors, and PyTorch .ckpt/.pth (zip + restricted unpickler).
export * from './safetensors.ts';
export { readTorchCheckpoint, extractStateDict, type TorchReadOptions } from './torch-pickle.ts';
export { looksLikeLegacyTorch } from './torch-legacy.ts';
export { FormatError } from './errors.ts';
export { addPngText, readPngText, crc32 } from './png-text.ts';
