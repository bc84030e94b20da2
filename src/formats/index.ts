// formats/ (rank 1): byte-level readers and writers that produce plain {dtype, shape, data}
// records, never Tensors: safetensors, and PyTorch .ckpt/.pth (zip + restricted unpickler).
export * from './safetensors.ts';
export { extractStateDict, type TorchReadOptions } from './torch-pickle.ts';
export { readTorchCheckpoint } from './torch-checkpoint.ts';
export { looksLikeLegacyTorch } from './torch-legacy.ts';
export { serializeTorchCheckpoint, writeStoredZip, contiguousStrides, type TorchScalar } from './torch-write.ts';
export { FormatError } from './errors.ts';
export { parseNpy, type NpyArray } from './npy.ts';
export { readZipDirectory, readZipEntry, type ZipEntry } from './zip.ts';
export { unpickle, type UnpickleOptions } from './pickle.ts';
export { resolveTorchGlobal } from './torch-pickle.ts';
export { encodePngSync } from './png.ts';
export { addPngText, readPngText, crc32 } from './png-text.ts';
