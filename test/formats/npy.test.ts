// .npy reader (src/formats/npy.ts) on files written by numpy 1.24 (np.save):
//   remap_used_i8.npy = np.array([0, 2, 4, 6, 8, 10, 12, 14], dtype=np.int64)
//   remap_used_i4.npy = np.array([1, 3, 5], dtype=np.int32)
//   matrix_f4.npy     = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNpy } from '../../src/formats/index.ts';

const fx = (n: string): string => join(import.meta.dirname, '../fixtures/formats', n);

test('parseNpy reads int64, int32 and float32 arrays with their shapes', () => {
  const a = parseNpy(readFileSync(fx('remap_used_i8.npy')));
  assert.equal(a.descr, '<i8');
  assert.deepEqual(a.shape, [8]);
  assert.deepEqual([...a.data], [0, 2, 4, 6, 8, 10, 12, 14]);
  const b = parseNpy(readFileSync(fx('remap_used_i4.npy')));
  assert.deepEqual([b.descr, [...b.data]], ['<i4', [1, 3, 5]]);
  const c = parseNpy(readFileSync(fx('matrix_f4.npy')));
  assert.deepEqual(c.shape, [2, 3]);
  assert.deepEqual([...c.data], [0, 0.25, 0.5, 0.75, 1, 1.25]);
});

test('parseNpy names the file and the fault', () => {
  assert.throws(() => parseNpy(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), 'x.npy'), /x\.npy: not a \.npy file/);
  const bytes = readFileSync(fx('remap_used_i8.npy'));
  assert.throws(() => parseNpy(bytes.subarray(0, bytes.length - 8), 'cut.npy'), /cut\.npy: data of 8 x 8 bytes runs past the end/);
  const obj = Buffer.from(bytes);
  obj.write("'|O'", obj.indexOf("'<i8'"), 'latin1');
  assert.throws(() => parseNpy(obj, 'obj.npy'), /dtype '\|O' is not supported/);
});
