// A VQ config whose `remap` names a .npy file (taming's VectorQuantizer2 np.loads it in its
// constructor; here io/config reads it before building): test/fixtures/formats/remap_used_i8.npy
// = np.array([0, 2, 4, 6, 8, 10, 12, 14], dtype=np.int64).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildModel } from '../../src/io/index.ts';
import { VQModel } from '../../src/models/index.ts';

const fx = (n: string): string => join(import.meta.dirname, '../fixtures/formats', n);

test('a VQModel config with remap: path builds with the used indices as the quantize.used buffer', () => {
  const params = {
    embed_dim: 2, n_embed: 16, remap: fx('remap_used_i8.npy'), sane_index_shape: true, lossconfig: { target: 'torch.nn.Identity' },
    ddconfig: { double_z: false, z_channels: 2, resolution: 8, in_channels: 1, out_ch: 1, ch: 32, ch_mult: [1], num_res_blocks: 1, attn_resolutions: [], dropout: 0.0 },
  };
  const m = buildModel({ target: 'ldm.models.autoencoder.VQModel', params }) as VQModel;
  assert.ok(m instanceof VQModel);
  assert.deepEqual(m.stateDict().get('quantize.used')!.toArray(), [0, 2, 4, 6, 8, 10, 12, 14]);
  assert.equal(m.quantize.reEmbed, 8);
  assert.throws(() => buildModel({ target: 'ldm.models.autoencoder.VQModel', params: { ...params, remap: fx('missing.npy') } }), /model\.params\.remap': cannot read/);
});
