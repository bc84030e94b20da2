// Learning rates: the official LambdaLR schedules and main.py's batch-size scaling.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig } from '../../src/io/index.ts';
import { LambdaLinearScheduler, LambdaWarmUpCosineScheduler, buildScheduler, resolveSettings } from '../../src/train/index.ts';

test('LambdaLinearScheduler: linear warm-up from f_start, then linear from f_max towards f_min', () => {
  const s = new LambdaLinearScheduler({ warm_up_steps: [10], f_start: [1e-6], f_max: [1], f_min: [0.1], cycle_lengths: [100] });
  assert.equal(s.schedule(0), 1e-6);
  assert.ok(Math.abs(s.schedule(5) - ((1 - 1e-6) / 10 * 5 + 1e-6)) < 1e-15);
  assert.ok(Math.abs(s.schedule(10) - (0.1 + 0.9 * 90 / 100)) < 1e-15);
  assert.ok(Math.abs(s.schedule(100) - 0.1) < 1e-15);
  const c = new LambdaWarmUpCosineScheduler({ warm_up_steps: 10, lr_min: 0.1, lr_max: 1, lr_start: 0, max_decay_steps: 110 });
  assert.equal(c.schedule(60), 0.1 + 0.45 * (1 + Math.cos(Math.PI / 2)));
  assert.equal(c.schedule(1000), 0.1);
  assert.equal(buildScheduler(null).schedule(123), 1);
  assert.throws(() => buildScheduler({ target: 'ldm.lr_scheduler.Nope' }), /unknown scheduler/);
  assert.throws(() => buildScheduler({ target: 'ldm.lr_scheduler.LambdaLinearScheduler', params: { warm_up_step: [1] } }), /did you mean 'warm_up_steps'/);
});

test('settings: lr scaled by batch size and accumulation when scale_lr; ucg null label', () => {
  const cfg = join(import.meta.dirname, '../../configs/debug.yaml');
  const s = resolveSettings(loadConfig(cfg, ['lightning.trainer.accumulate_grad_batches=2']));
  assert.equal(s.learningRate, 2e-5 * 16 * 2);
  assert.deepEqual(s.ucg, [{ key: 'class_label', p: 0.1, val: 10 }]);
  assert.equal(resolveSettings(loadConfig(cfg, ['scale_lr=false'])).learningRate, 2e-5);
});
