#!/usr/bin/python3
"""Reference numbers for test/diffusion/schedules.test.ts, computed with PyTorch 1.13 + numpy.

Writes test/fixtures/schedules/reference.json. Run from the repository root:
    /usr/bin/python3 scripts/gen-schedule-reference.py

The official repositories are not installed here, so each function below re-states the official
expression with the same torch / numpy operations and dtypes (float32 where the official uses
torch's default dtype or float32 buffers, float64 where it uses numpy or float64 torch):
  - LDM (CompVis/latent-diffusion a506df5): make_beta_schedule, DDPM.register_schedule,
    make_ddim_timesteps, make_ddim_sampling_parameters, DDIMSampler.make_schedule;
  - lucidrains/denoising-diffusion-pytorch v2.3.1: linear/cosine/sigmoid_beta_schedule,
    GaussianDiffusion.__init__ buffers and loss_weight, ddim_sample times;
  - w86763777/pytorch-ddpm f804ccb: GaussianDiffusionTrainer / GaussianDiffusionSampler buffers.
Floats are written with repr() (shortest round-trip), so JSON.parse gives the exact doubles.
"""
import json
import math
import os

import numpy as np
import torch

OUT = os.path.join('test', 'fixtures', 'schedules', 'reference.json')


def arr(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype.kind in 'iu':
        return [int(v) for v in x.tolist()]
    return [float(v) for v in x.astype(np.float64).tolist()]


# ---------------- LDM ----------------

def ldm_make_beta_schedule(schedule, n, linear_start=1e-4, linear_end=2e-2, cosine_s=8e-3):
    if schedule == 'linear':
        b = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, n, dtype=torch.float64) ** 2
    elif schedule == 'cosine':
        ts = torch.arange(n + 1, dtype=torch.float64) / n + cosine_s
        a = ts / (1 + cosine_s) * np.pi / 2
        a = torch.cos(a).pow(2)
        a = a / a[0]
        b = 1 - a[1:] / a[:-1]
        b = np.clip(b, a_min=0, a_max=0.999)
    elif schedule == 'sqrt_linear':
        b = torch.linspace(linear_start, linear_end, n, dtype=torch.float64)
    elif schedule == 'sqrt':
        b = torch.linspace(linear_start, linear_end, n, dtype=torch.float64) ** 0.5
    return np.asarray(b.numpy() if isinstance(b, torch.Tensor) else b)


def ldm_register_schedule(betas, parameterization='eps', v_posterior=0.):
    """float64 numpy values before the float32 cast, plus lvlb_weights as the official computes them."""
    alphas = 1. - betas
    ac = np.cumprod(alphas, axis=0)
    acp = np.append(1., ac[:-1])
    to_torch = lambda x: torch.tensor(x, dtype=torch.float32)
    pv = (1 - v_posterior) * betas * (1. - acp) / (1. - ac) + v_posterior * betas
    buf = {
        'betas': betas, 'alphas_cumprod': ac, 'alphas_cumprod_prev': acp,
        'sqrt_alphas_cumprod': np.sqrt(ac), 'sqrt_one_minus_alphas_cumprod': np.sqrt(1. - ac),
        'log_one_minus_alphas_cumprod': np.log(1. - ac), 'sqrt_recip_alphas_cumprod': np.sqrt(1. / ac),
        'sqrt_recipm1_alphas_cumprod': np.sqrt(1. / ac - 1), 'posterior_variance': pv,
        'posterior_log_variance_clipped': np.log(np.maximum(pv, 1e-20)),
        'posterior_mean_coef1': betas * np.sqrt(acp) / (1. - ac),
        'posterior_mean_coef2': (1. - acp) * np.sqrt(alphas) / (1. - ac),
    }
    t_betas, t_pv, t_ac = to_torch(betas), to_torch(pv), to_torch(ac)
    if parameterization == 'eps':
        lv = t_betas ** 2 / (2 * t_pv * to_torch(alphas) * (1 - t_ac))
    elif parameterization == 'x0':
        lv = 0.5 * np.sqrt(torch.Tensor(ac)) / (2. * 1 - torch.Tensor(ac))
    elif parameterization == 'v':  # Stability-AI/stablediffusion
        lv = torch.ones_like(t_betas ** 2 / (2 * t_pv * to_torch(alphas) * (1 - t_ac)))
    lv[0] = lv[1]
    assert lv.dtype == torch.float32
    return {k: arr(v) for k, v in buf.items()}, arr(lv)


def ldm_make_ddim_timesteps(method, S, T):
    if method == 'uniform':
        c = T // S
        ts = np.asarray(list(range(0, T, c)))
    else:
        ts = ((np.linspace(0, np.sqrt(T * .8), S)) ** 2).astype(int)
    return ts + 1


def ldm_ddim_make_schedule(model_ac32, model_acp32, S, discretize, eta):
    T = model_ac32.shape[0]
    ddim_timesteps = ldm_make_ddim_timesteps(discretize, S, T)
    alphacums = model_ac32.cpu()
    alphas = alphacums[ddim_timesteps]
    alphas_prev = np.asarray([alphacums[0]] + alphacums[ddim_timesteps[:-1]].tolist())
    sigmas = eta * np.sqrt((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev))
    sqrt_1m = np.sqrt(1. - alphas)
    ac = model_ac32.clone().to(torch.float32)
    acp = model_acp32.clone().to(torch.float32)
    orig = eta * torch.sqrt((1 - acp) / (1 - ac) * (1 - ac / acp))
    dt = lambda x: str(x.dtype)
    return {
        'ddim_timesteps': arr(ddim_timesteps),
        'ddim_sigmas': arr(sigmas), 'ddim_alphas': arr(alphas), 'ddim_alphas_prev': arr(alphas_prev),
        'ddim_sqrt_one_minus_alphas': arr(sqrt_1m), 'ddim_sigmas_for_original_num_steps': arr(orig),
        'dtypes': {'ddim_sigmas': dt(sigmas), 'ddim_alphas': dt(alphas), 'ddim_alphas_prev': dt(alphas_prev),
                   'ddim_sqrt_one_minus_alphas': dt(sqrt_1m), 'ddim_sigmas_for_original_num_steps': dt(orig)},
    }


# ---------------- lucidrains ----------------

def ddp_linear(T):
    scale = 1000 / T
    return torch.linspace(scale * 0.0001, scale * 0.02, T, dtype=torch.float64)


def ddp_cosine(T, s=0.008):
    t = torch.linspace(0, T, T + 1, dtype=torch.float64) / T
    ac = torch.cos((t + s) / (1 + s) * math.pi * 0.5) ** 2
    ac = ac / ac[0]
    return torch.clip(1 - (ac[1:] / ac[:-1]), 0, 0.999)


def ddp_sigmoid(T, start=-3, end=3, tau=1):
    t = torch.linspace(0, T, T + 1, dtype=torch.float64) / T
    v_start = torch.tensor(start / tau).sigmoid()
    v_end = torch.tensor(end / tau).sigmoid()
    ac = (-((t * (end - start) + start) / tau).sigmoid() + v_end) / (v_end - v_start)
    ac = ac / ac[0]
    return torch.clip(1 - (ac[1:] / ac[:-1]), 0, 0.999)


def ddp_buffers(betas, objective, min_snr=False, gamma=5):
    import torch.nn.functional as F
    alphas = 1. - betas
    ac = torch.cumprod(alphas, dim=0)
    acp = F.pad(ac[:-1], (1, 0), value=1.)
    pv = betas * (1. - acp) / (1. - ac)
    snr = ac / (1 - ac)
    m = snr.clone()
    if min_snr:
        m.clamp_(max=gamma)
    lw = {'pred_noise': m / snr, 'pred_x0': m, 'pred_v': m / (snr + 1)}[objective]
    buf = {
        'betas': betas, 'alphas_cumprod': ac, 'alphas_cumprod_prev': acp,
        'sqrt_alphas_cumprod': torch.sqrt(ac), 'sqrt_one_minus_alphas_cumprod': torch.sqrt(1. - ac),
        'log_one_minus_alphas_cumprod': torch.log(1. - ac), 'sqrt_recip_alphas_cumprod': torch.sqrt(1. / ac),
        'sqrt_recipm1_alphas_cumprod': torch.sqrt(1. / ac - 1), 'posterior_variance': pv,
        'posterior_log_variance_clipped': torch.log(pv.clamp(min=1e-20)),
        'posterior_mean_coef1': betas * torch.sqrt(acp) / (1. - ac),
        'posterior_mean_coef2': (1. - acp) * torch.sqrt(alphas) / (1. - ac),
        'loss_weight': lw,
    }
    assert all(v.dtype == torch.float64 for v in buf.values())
    return {k: arr(v) for k, v in buf.items()}


def ddp_ddim_times(T, S):
    times = torch.linspace(-1, T - 1, steps=S + 1)
    return list(reversed(times.int().tolist()))


# ---------------- pytorch-ddpm ----------------

def pddpm(beta_1, beta_T, T):
    import torch.nn.functional as F
    betas = torch.linspace(beta_1, beta_T, T).double()
    alphas = 1. - betas
    ab = torch.cumprod(alphas, dim=0)
    abp = F.pad(ab, [1, 0], value=1)[:T]
    pv = betas * (1. - abp) / (1. - ab)
    out = {
        'betas': betas, 'sqrt_alphas_bar': torch.sqrt(ab), 'sqrt_one_minus_alphas_bar': torch.sqrt(1. - ab),
        'sqrt_recip_alphas_bar': torch.sqrt(1. / ab), 'sqrt_recipm1_alphas_bar': torch.sqrt(1. / ab - 1),
        'posterior_var': pv, 'posterior_log_var_clipped': torch.log(torch.cat([pv[1:2], pv[1:]])),
        'posterior_mean_coef1': torch.sqrt(abp) * betas / (1. - ab),
        'posterior_mean_coef2': torch.sqrt(alphas) * (1. - abp) / (1. - ab),
        'fixedlarge': torch.log(torch.cat([pv[1:2], betas[1:]])),
    }
    assert all(v.dtype == torch.float64 for v in out.values())
    return {k: arr(v) for k, v in out.items()}


def main():
    ref = {'generator': 'scripts/gen-schedule-reference.py', 'torch': torch.__version__, 'numpy': np.__version__}

    # torch.linspace, bit for bit (float32 results widened exactly)
    ref['torch_linspace'] = [
        {'start': a, 'end': b, 'steps': n, 'dtype': d,
         'values': arr(torch.linspace(a, b, n, dtype=getattr(torch, d)))}
        for (a, b, n, d) in [
            (1e-4, 0.02, 37, 'float32'), (1e-4, 0.02, 333, 'float32'), (0.1, 7.3, 101, 'float32'),
            (-1, 999, 51, 'float32'), (-1, 999, 4, 'float32'), (0.00085, 0.012, 1, 'float32'),
            (0.01, 0.1414213562373095, 57, 'float64'), (0, 200, 201, 'float64'), (-3.5, 2.25, 123, 'float64'),
        ]]

    T = 40
    ref['ldm_make_beta_schedule'] = [
        {'kind': k, 'T': T, 'linear_start': ls, 'linear_end': le, 'cosine_s': cs,
         'betas': arr(ldm_make_beta_schedule(k, T, ls, le, cs))}
        for (k, ls, le, cs) in [
            ('linear', 1e-4, 2e-2, 8e-3), ('linear', 0.00085, 0.012, 8e-3), ('cosine', 1e-4, 2e-2, 8e-3),
            ('cosine', 1e-4, 2e-2, 0.02), ('sqrt_linear', 1e-4, 2e-2, 8e-3), ('sqrt_linear', 0.0015, 0.0195, 8e-3),
            ('sqrt', 1e-4, 2e-2, 8e-3), ('sqrt', 0.00085, 0.012, 8e-3),
        ]]

    ref['ldm_register_schedule'] = []
    for (k, ls, le, param, vpost) in [
        ('sqrt_linear', 1e-4, 2e-2, 'eps', 0.), ('sqrt', 1e-4, 2e-2, 'x0', 0.),
        ('linear', 0.00085, 0.012, 'v', 0.), ('cosine', 1e-4, 2e-2, 'eps', 0.25),
    ]:
        buf, lv = ldm_register_schedule(ldm_make_beta_schedule(k, T, ls, le), param, vpost)
        ref['ldm_register_schedule'].append({'kind': k, 'T': T, 'linear_start': ls, 'linear_end': le,
                                             'parameterization': param, 'v_posterior': vpost,
                                             'buffers': buf, 'lvlb_weights': lv})

    ref['ldm_ddim_timesteps'] = [
        {'method': m, 'S': S, 'T': TT, 'timesteps': arr(ldm_make_ddim_timesteps(m, S, TT))}
        for (m, S, TT) in [('quad', 10, 1000), ('quad', 50, 1000), ('quad', 7, 1000), ('quad', 33, 500),
                           ('quad', 200, 1000), ('quad', 1, 1000), ('uniform', 10, 1000), ('uniform', 30, 1000),
                           ('uniform', 250, 1000), ('uniform', 7, 100)]]

    ref['ldm_ddim_schedule'] = []
    for (S, disc, eta) in [(20, 'uniform', 0.7), (15, 'quad', 1.0), (30, 'uniform', 0.3)]:
        buf, _ = ldm_register_schedule(ldm_make_beta_schedule('linear', 200, 0.00085, 0.012))
        ac32 = torch.tensor(buf['alphas_cumprod'], dtype=torch.float64).to(torch.float32)
        acp32 = torch.tensor(buf['alphas_cumprod_prev'], dtype=torch.float64).to(torch.float32)
        d = ldm_ddim_make_schedule(ac32, acp32, S, disc, eta)
        d.update({'S': S, 'discretize': disc, 'eta': eta, 'T': 200, 'beta_schedule': 'linear',
                  'linear_start': 0.00085, 'linear_end': 0.012})
        ref['ldm_ddim_schedule'].append(d)

    ref['ddp_beta_schedule'] = [
        {'kind': 'linear', 'T': 100, 'kwargs': {}, 'betas': arr(ddp_linear(100))},
        {'kind': 'linear', 'T': 250, 'kwargs': {}, 'betas': arr(ddp_linear(250))},
        {'kind': 'cosine', 'T': 100, 'kwargs': {}, 'betas': arr(ddp_cosine(100))},
        {'kind': 'cosine', 'T': 250, 'kwargs': {'s': 0.02}, 'betas': arr(ddp_cosine(250, 0.02))},
        {'kind': 'sigmoid', 'T': 100, 'kwargs': {}, 'betas': arr(ddp_sigmoid(100))},
        {'kind': 'sigmoid', 'T': 250, 'kwargs': {'start': 0, 'end': 3, 'tau': 0.7},
         'betas': arr(ddp_sigmoid(250, 0, 3, 0.7))},
    ]
    ref['ddp_buffers'] = [
        {'kind': k, 'T': 40, 'objective': o, 'min_snr_loss_weight': m, 'min_snr_gamma': g,
         'buffers': ddp_buffers(fn(40), o, m, g)}
        for (k, fn, o, m, g) in [('linear', ddp_linear, 'pred_noise', False, 5), ('cosine', ddp_cosine, 'pred_x0', True, 5),
                                 ('cosine', ddp_cosine, 'pred_v', True, 2.5), ('sigmoid', ddp_sigmoid, 'pred_noise', True, 5)]]
    ref['ddp_ddim_times'] = [{'T': TT, 'S': S, 'times': ddp_ddim_times(TT, S)}
                             for (TT, S) in [(1000, 3), (1000, 10), (1000, 250), (1000, 999), (100, 7), (1000, 1)]]

    ref['pddpm'] = [{'beta_1': 1e-4, 'beta_T': 0.02, 'T': 40, 'buffers': pddpm(1e-4, 0.02, 40)},
                    {'beta_1': 2e-4, 'beta_T': 0.04, 'T': 50, 'buffers': pddpm(2e-4, 0.04, 50)}]

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as f:
        json.dump(ref, f, separators=(',', ':'))
        f.write('\n')
    print(f'wrote {OUT} ({os.path.getsize(OUT)} bytes)')


if __name__ == '__main__':
    main()
