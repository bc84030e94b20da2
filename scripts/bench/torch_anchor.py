# The PyTorch anchor of `npm run bench`, run by hand or by `npm run bench -- --torch`:
#   w4    W4 (shared/bench/unet_torch.py's UNet, batch 16): one training step and one sampling
#         forward pass, in fp32 or under torch.autocast('cpu', dtype=torch.bfloat16) (PRECISION=bf16),
#         the same mixed precision as ldm.ts's --precision bf16 (bf16 convolutions and matmuls,
#         fp32 master weights, norms and loss).
#   jobs  the user's main jobs with the official code's UNetModel built from configs/mnist-ddpm.yaml:
#         100 training steps (batch 64, v-prediction, AdamW, grad clip 1, EMA) and sampling 100 digits
#         with DDIM 50 steps and classifier-free guidance 3 (two forward passes per step, batched).
#         Data is random tensors of MNIST's shape: timing does not depend on the pixel values.
# Prints JSON lines {"engine", "workload", "times": [seconds...], "cpu_times"?, "flop"?} like shared/bench
# (cpu_times: process CPU seconds of each repetition, for W4).
# Env: JOB_STEPS / JOB_SAMPLES (100 / 100; smaller for a quick check), LDM_SHARED_BENCH (folder of
# unet_torch.py), LDM_REF (the CompVis latent-diffusion clone, default /work/ref/CompVis+latent-diffusion), PRECISION (fp32|bf16), REPS, TORCH_THREADS.
# Run with the tuned setting of shared/bench/README.md (bench.ts sets it).
import json, os, sys, time

import torch
import torch.nn.functional as F

torch.set_num_threads(int(os.environ.get('TORCH_THREADS', '2')))
torch.manual_seed(0)
BF16 = os.environ.get('PRECISION', 'fp32') == 'bf16'
ENGINE = f"pytorch-{torch.__version__.split('+')[0]}{' bf16 autocast' if BF16 else ''}"
REPS = int(os.environ.get('REPS', '5'))


def autocast():
    return torch.autocast('cpu', dtype=torch.bfloat16, enabled=BF16)


if BF16:
    # PyTorch 1.13's CPU autocast leaves group_norm off its fp32 list, and group_norm then fails on a
    # bf16 input with fp32 weights ("expected scalar type BFloat16 but found Float"). Later versions run
    # it in fp32, as ldm.ts does: do that here (the norm in fp32, its output cast by the next op).
    _gn = torch.nn.GroupNorm.forward
    torch.nn.GroupNorm.forward = lambda self, x: _gn(self, x.float())


def emit(workload, times, flop=None, **extra):
    d = {'engine': ENGINE, 'workload': workload, 'times': times}
    if workload in CPU:
        d['cpu_times'] = CPU[workload]
    if flop:
        d['flop'] = flop
    d.update(extra)
    print(json.dumps(d))
    sys.stdout.flush()


CPU = {}  # workload -> CPU seconds (all threads) of each timed repetition


def timed(fn, reps, warm=2, name=None):
    """Wall seconds of each repetition; the process CPU seconds go to CPU[name] (on a shared
    machine wall time includes waiting for a core, CPU time does not)."""
    for _ in range(warm):
        fn()
    ts, cs = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    if name:
        CPU[name] = cs
    return ts


def w4():
    sys.path.insert(0, os.environ.get('LDM_SHARED_BENCH', os.path.join(os.path.dirname(__file__), '../../../shared/bench')))
    import unet_torch as U
    B = 16
    model = U.UNet()
    x0 = torch.randn(B, 3, 32, 32)
    t = torch.randint(0, 1000, (B,))
    ff = U.count_fwd_flops(model, x0, t)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    ab = torch.linspace(0.9999, 0.0001, 1000)

    def step():
        tt = torch.randint(0, 1000, (B,))
        n = torch.randn_like(x0)
        a = ab[tt][:, None, None, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * n
        with autocast():
            out = model(xt, tt)
        loss = F.mse_loss(out.float(), n)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    emit('W4_train_step', timed(step, REPS, name='W4_train_step'), 3 * ff)

    def fwd():
        with torch.no_grad(), autocast():
            model(x0, t)

    emit('W4_sample_fwd', timed(fwd, REPS * 2, name='W4_sample_fwd'), ff)


def official_unet():
    """configs/mnist-ddpm.yaml's UNetModel from the official code, imported through
    scripts/fixtures/official_env.py (LDM_REF; stand-ins for packages absent offline; no weights)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures'))
    import official_env  # the fixture generators' offline stand-ins (einops wheel, pytorch_lightning, ...)
    official_env.setup()
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    return UNetModel(image_size=28, in_channels=1, out_channels=1, model_channels=32, channel_mult=(1, 2, 2),
                     num_res_blocks=1, attention_resolutions=[4], num_heads=4, num_classes=11, dropout=0.0,
                     conv_resample=False, use_scale_shift_norm=True)


def jobs():
    model = official_unet()
    T = 1000
    betas = torch.linspace(1e-4 ** 0.5, 0.02 ** 0.5, T, dtype=torch.float64) ** 2   # the official "linear"
    abar = torch.cumprod(1 - betas, 0).float()
    sa, s1a = abar.sqrt(), (1 - abar).sqrt()
    opt = torch.optim.AdamW(model.parameters(), lr=6.4e-4)
    ema = [p.detach().clone() for p in model.parameters()]
    B = 64

    def train_step():
        x0 = torch.rand(B, 1, 28, 28) * 2 - 1
        y = torch.randint(0, 10, (B,))
        y = torch.where(torch.rand(B) < 0.1, torch.full_like(y, 10), y)
        t = torch.randint(0, T, (B,))
        n = torch.randn_like(x0)
        a, s = sa[t][:, None, None, None], s1a[t][:, None, None, None]
        xt = a * x0 + s * n
        v = a * n - s * x0
        with autocast():
            out = model(xt, t, y=y)
        loss = F.mse_loss(out.float(), v)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, model.parameters()):
                e.mul_(0.9999).add_(p, alpha=1 - 0.9999)

    steps = int(os.environ.get('JOB_STEPS', '100'))
    for _ in range(2):
        train_step()
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step()
    emit(f'job_train_{steps}_steps', [time.perf_counter() - t0])

    def sample():
        n, g = int(os.environ.get('JOB_SAMPLES', '100')), 3.0
        ts = list(range(0, T, T // 50))        # DDIM "uniform": 0, 20, ..., 980
        x = torch.randn(n, 1, 28, 28)
        y = torch.arange(n) % 10
        yy = torch.cat([y, torch.full_like(y, 10)])
        with torch.no_grad():
            for i in reversed(range(len(ts))):
                t = ts[i]
                tt = torch.full((2 * n,), t, dtype=torch.long)
                with autocast():
                    out = model(torch.cat([x, x]), tt, y=yy).float()
                vc, vu = out.chunk(2)
                vv = vu + g * (vc - vu)
                a, s = sa[t], s1a[t]
                x0 = (a * x - s * vv).clamp(-1, 1)
                eps = (x - a * x0) / s
                ap = abar[ts[i - 1]] if i > 0 else torch.tensor(1.0)
                x = ap.sqrt() * x0 + (1 - ap).sqrt() * eps
        return x

    model.eval()
    sample()
    emit(f"job_sample_{os.environ.get('JOB_SAMPLES', '100')}_ddim50_cfg", timed(sample, 1, warm=0))


if __name__ == '__main__':
    what = sys.argv[1] if len(sys.argv) > 1 else 'w4'
    {'w4': w4, 'jobs': jobs}[what]()
