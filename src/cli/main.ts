// The `ldm` command line (commander): train, sample, eval, train-classifier, models, inspect,
// demo, bench, parity. The only place that reads argv, prints and sets the exit status: errors
// print one line `ldm: error: ...` (the stack with DEBUG=1) and exit with status 1.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DEBUG, LdmError, clip, describe, fmtShape } from '../util/index.ts';
import { precisionEmulated, precisionFallback, setPrecision } from '../tensor/index.ts';
import { SAMPLER_NAMES, SIGMA_SCHEDULES } from '../diffusion/index.ts';
import { inspectConfig, inspectFile, modelsDir, readRegistry } from '../io/index.ts';
import { trainCommand } from './train.ts';
import { sampleCommand } from './sample.ts';
import { CLASSIFIER_FILE, FASHION_CLASSIFIER_FILE, evalCommand, trainClassifierCommand } from './eval.ts';
import { benchMain } from './bench.ts';
import { parityMain } from './parity.ts';
import { startServer } from './serve.ts';
import { convertCommand } from './convert.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const int = (name: string, min = 0) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
  return n;
};
const float = (name: string, min = -Infinity, hint = '') => (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  if (n < min) throw new InvalidArgumentError(`${name} must be >= ${min}${hint}, got ${n}`);
  return n;
};
const classes = (v: string, prev: number[] | undefined): number[] => {
  // 'none' = the null class (unconditional sampling of a class-conditional model), kept as -1
  const list = v.split(',').map((s) => (s.trim().toLowerCase() === 'none' ? -1 : Number(s.trim())));
  if (list.some((n) => !Number.isInteger(n) || n < -1)) throw new InvalidArgumentError("--class takes class indices or 'none', e.g. 7 or 0,1,2 or none");
  return [...(prev ?? []), ...list];
};
const texts = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), ...v.split('|').map((s) => s.trim()).filter((s) => s.length > 0)];

/** `--precision fp32|bf16` (train, sample): bf16 = mixed precision like torch.autocast (bf16
 *  convolutions on avx512_bf16/AMX, fp32 master weights, norms and losses); one line on stderr
 *  when this machine falls back to fp32. Applied by the preAction hook in buildProgram. */
const precisionOption = (): Option => new Option('--precision <p>', 'compute precision: fp32, or bf16 mixed precision (convolutions in bf16 where the CPU has avx512_bf16)')
  .choices(['fp32', 'bf16']).default('fp32');

function applyPrecision(p: unknown): void {
  if (p !== 'bf16') return;
  const got = setPrecision('bf16');
  if (got !== 'bf16') process.stderr.write(`note: --precision bf16: ${precisionFallback() ?? 'unavailable'}\n`);
  else if (precisionEmulated()) process.stderr.write('note: --precision bf16: emulated (LDM_BF16_EMULATE=1): bf16 rounding in fp32 kernels, slower than fp32\n');
}

function samplerOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--sampler <name>', "sampler (default: the shipped model's own choice, else ddim)").choices(SAMPLER_NAMES))
    .option('--steps <n>', "sampler steps, all but ddpm, which always runs all T (default: the shipped model's own choice, else 50)", int('--steps', 1))
    .addOption(new Option('--scheduler <name>', 'sigma schedule of the k-diffusion samplers (default karras)').choices(SIGMA_SCHEDULES))
    .option('--eta <e>', 'DDIM eta (default 0 = deterministic); euler_a, dpmpp_2s_a, dpmpp_2m_sde, dpmpp_3m_sde: noise amount (default 1)', float('--eta', 0))
    .option('--s-noise <s>', 'k-samplers: scale of the added noise (default 1)', float('--s-noise', 0))
    .option('--s-churn <s>', 'euler, heun, dpm2: Karras churn (default 0)', float('--s-churn', 0))
    .option('--solver-type <t>', 'dpmpp_2m_sde: midpoint (default) or heun')
    .option('--guidance <g>', 'classifier-free guidance scale, 1 = none (default: the shipped model\'s own choice, else 3 for models trained with a null class, else 1)', float('--guidance', 0, ' (1 = no guidance, 0 = unconditional, larger = follow the condition more)'))
    .option('--seed <s>', 'random seed', int('--seed'), 0)
    .option('--model <name>', 'shipped model (see `ldm models`) when no checkpoint is given', 'mnist-ddpm')
    .option('--config <yaml>', 'config of the checkpoint (needed for official .ckpt files)')
    .option('--no-ema', 'use the raw weights instead of the EMA weights');
}

const BENCH_HELP = `Usage: ldm bench [options]

performance benchmark: W1 conv 3x3 forward / backward, W2 sgemm, W3 attention (native backend),
W4 a training step and a sampling pass of the benchmark UNet at batch 16

Options:
  --json                   one JSON object per workload
  --reps <n>               repetitions of W4 (default 5)
  --w4-only                skip the kernel workloads W1-W3
  --profile                per-kernel breakdown of W4 instead of the table
  --jobs                   also time the main user jobs (training and sampling)
  --precision fp32|bf16    W4 and the jobs in mixed precision with bf16 (default fp32)
  --torch                  also run the PyTorch anchor (../shared/bench/unet_torch.py) and print ratios
  --ab KNOB=VALUE          W4 with a convolution knob as it is and at VALUE, runs alternating
                           (winograd, gemm1x1, direct: auto|on|off; wino-tile: auto|2|4;
                           wino-split: auto|tiles|images)
  -h, --help               display this help`;

export function buildProgram(): Command {
  const program = new Command('ldm')
    .description('Denoising diffusion models in TypeScript: train, sample and evaluate DDPM / LDM models on the CPU.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .hook('preAction', (_p, action) => { applyPrecision(action.opts()['precision']); });

  program.command('train')
    .description('train a model from a YAML config (official structure: model / data / lightning)')
    .argument('[config]', 'YAML config, e.g. configs/mnist-ddpm.yaml (optional with --resume)')
    .argument('[overrides...]', 'config overrides key.path=value, e.g. lightning.trainer.max_steps=2000')
    .option('--resume <dir>', "continue a run from its last checkpoint (uses the run's config; overrides apply on top)")
    .option('--init-from <model>', 'start a new run (step 0, new optimizer and schedule) from these trained weights, e.g. models/mnist-ldm-text.safetensors, to train a model longer')
    .option('--out <dir>', 'run folder (default runs/<config>-<time>)')
    .option('-q, --quiet', 'no progress output')
    .addOption(precisionOption())
    .option('--serve [port]', 'also serve the page (ldm serve) and watch this run live (default port 8080)', int('--serve'))
    .option('--host <addr>', 'address for --serve (default loopback)', '127.0.0.1')
    .action(async (config: string | undefined, overrides: string[], o: { resume?: string; initFrom?: string; out?: string; quiet?: boolean; serve?: number | true; host: string }) => {
      const { serve, host, ...rest } = o;
      await trainCommand(config !== undefined ? [config, ...overrides] : overrides, {
        ...rest, ...(serve !== undefined ? { serve: { port: serve === true ? 8080 : serve, host } } : {}),
      });
    });

  program.command('serve')
    .description('serve the page and JSON API: models, sampling playground, live training runs, in-browser mode (loopback by default)')
    .option('--port <p>', 'port (0 = any free port)', int('--port'), 8080)
    .option('--host <addr>', 'address to bind (default loopback; 0.0.0.0 exposes it to the network)', '127.0.0.1')
    .option('--runs <dir>', 'folder of training runs to list and watch', 'runs')
    .option('--max-n <n>', 'largest n of a sample request', int('--max-n', 1), 64)
    .action(async (o: { port: number; host: string; runs: string; maxN: number }) => {
      const s = await startServer({ port: o.port, host: o.host, runs: o.runs, maxN: o.maxN, log: (l) => process.stderr.write(`${l}\n`) });
      if (!['127.0.0.1', 'localhost', '::1'].includes(o.host)) process.stderr.write(`warning: listening on ${o.host}: anyone who can reach this address can use the server\n`);
      console.log(`ldm serve: ${s.url} (runs: ${resolve(o.runs)}; Ctrl-C to quit)`);
      await new Promise<void>((res) => { process.once('SIGINT', () => { void s.close().then(res); }); });
    });

  samplerOptions(program.command('sample'))
    .addOption(precisionOption())
    .description('sample a trained model into a grid PNG (and the denoising strip with --strip)')
    .argument('[checkpoint]', 'model file, run folder or official .ckpt (default: the shipped model)')
    .option('--class <k>', "class of the samples (repeat or comma-separate to mix; 'none' = unconditional, the null class)", classes)
    .option('--negative-class <k>', 'class the guidance steers away from (instead of the null class)', classes)
    .option('--prompt <text>', "text prompt of a text-conditional LDM, e.g. 'a handwritten seven' (repeat or '|'-separate to mix)", texts)
    .option('--negative-prompt <text>', 'text the guidance steers away from (instead of the empty prompt)', texts)
    .option('--init <image>', 'image-to-image: start from this image (resized to the model size), noised to --strength')
    .option('--strength <s>', 'image-to-image: how much of the schedule to run, in (0, 1] (default 0.75; 1 with --mask)', float('--strength'))
    .option('--mask <image>', 'inpainting with --init: white = regenerate, black = keep')
    .option('--n <n>', 'number of samples', int('--n', 1), 40)
    .option('--batch-size <b>', 'samples per batch (memory stays bounded for large --n; batch k uses seed + k * b)', int('--batch-size', 1))
    .option('--out <file>', 'output PNG, or a folder DIR/ for grid.png plus one PNG per image', 'samples.png')
    .option('--strip', 'also write the denoising trajectory as <out>-strip.png')
    .option('--json', 'print a JSON summary on stdout')
    .option('--upscale <k>', 'nearest-neighbour upscaling of the grid', int('--upscale', 1), 1)
    .action(async (ckpt: string | undefined, o: Parameters<typeof sampleCommand>[1] & { ema?: boolean }) => {
      await sampleCommand(ckpt, { ...o, noEma: o.ema === false });
    });

  samplerOptions(program.command('eval'))
    .description('evaluate a model: bits/dim on test images and, for class-conditional models, the class accuracy of its samples and their classifier-FID (with the real-vs-real floor)')
    .argument('[checkpoint]', 'model file, run folder or official .ckpt (default: the shipped model)')
    .option('--bpd-n <n>', 'test images for bits/dim (0 = skip)', int('--bpd-n'), 100)
    .option('--bpd-stride <k>', 'estimate the bound from every k-th timestep (1 = the exact sum: T model calls per batch)', int('--bpd-stride', 1), 10)
    .option('--per-class <n>', 'samples per class for the accuracy (0 = skip)', int('--per-class'), 50)
    .option('--classifier <file>', `classifier weights (default models/${CLASSIFIER_FILE}, or models/${FASHION_CLASSIFIER_FILE} for Fashion-MNIST models)`)
    .option('--no-fid', 'skip the classifier-FID of the samples')
    .option('--samples <file>', 'also save the generated samples as a grid PNG')
    .option('--json', 'print the report as JSON')
    .action(async (ckpt: string | undefined, o: Parameters<typeof evalCommand>[1] & { ema?: boolean }) => {
      await evalCommand(ckpt, { ...o, noEma: o.ema === false });
    });

  program.command('train-classifier')
    .description('train the small classifier used by `ldm eval` for class accuracy and classifier-FID (a few minutes on 2 cores)')
    .option('--out <file>', `weights file (default models/${CLASSIFIER_FILE}, or models/${FASHION_CLASSIFIER_FILE} with --dataset fashion-mnist)`)
    .option('--epochs <n>', 'epochs', int('--epochs', 1), 4)
    .option('--seed <s>', 'seed', int('--seed'), 0)
    .addOption(new Option('--dataset <name>', 'data set').choices(['mnist', 'fashion-mnist']).default('mnist'))
    .action(async (o: Parameters<typeof trainClassifierCommand>[0]) => { await trainClassifierCommand(o); });

  program.command('models')
    .description('list the shipped models (models/registry.json)')
    .action(() => {
      const reg = readRegistry();
      if (reg.length === 0) { console.log('no shipped models'); return; }
      for (const e of reg) {
        const ok = existsSync(join(modelsDir(), e.checkpoint));
        console.log(`${e.name.padEnd(20)} ${ok ? 'available' : 'missing  '}  ${join('models', e.checkpoint)}${e.description ? `  ${e.description}` : ''}`);
      }
    });

  program.command('inspect')
    .description('list the tensors (name, dtype, shape) and metadata of a .safetensors or PyTorch .ckpt/.pth file; ' +
      'for a YAML config: build its model (shapes only, no checkpoint read) and print target, parameters and state-dict entries')
    .argument('<file>')
    .option('--json', 'print as JSON')
    .action((file: string, o: { json?: boolean }) => {
      if (/\.ya?ml$/i.test(file)) {
        const c = inspectConfig(file);
        if (o.json) { console.log(JSON.stringify(c)); return; }
        const n = (v: number): string => v.toLocaleString('en-US');
        console.log(`${c.config}: ${c.target}`);
        console.log(`  parameters       ${n(c.parameters)} (${n(c.trainable_parameters)} trainable)`);
        console.log(`  state_dict keys  ${n(c.state_dict_keys)} (${n(c.buffers)} buffers)`);
        for (const [k, v] of Object.entries(c.children)) console.log(`  ${k.padEnd(18)} ${n(v)} parameters`);
        for (const p of c.ckpt_paths) console.log(`  ${p.key}: ${p.path} (${p.exists ? 'present' : 'absent'}; not read)`);
        return;
      }
      const r = inspectFile(file);
      if (o.json) { console.log(JSON.stringify(r)); return; }
      const numel = (s: number[]): number => s.reduce((a, b) => a * b, 1);
      console.log(`${r.path}: ${r.kind}, ${r.entries.length} tensors, ${r.entries.reduce((a, e) => a + numel(e.shape), 0).toLocaleString('en-US')} values, ${(r.bytes / 1e6).toFixed(2)} MB`);
      for (const [k, v] of Object.entries(r.metadata)) console.log(`  meta ${k}: ${v.length > 120 ? `${v.slice(0, 117)}...` : v}`);
      const w = Math.min(72, Math.max(...r.entries.map((e) => e.name.length), 4));
      for (const e of r.entries) console.log(`  ${e.name.padEnd(w)} ${e.dtype.padEnd(5)} ${fmtShape(e.shape)}`);
    });

  program.command('convert')
    .description('convert weights: official .ckpt/.pth (zip or legacy) <-> .safetensors (official keys) <-> our model files and run folders; the format follows OUT\'s extension')
    .argument('<in>', 'official .ckpt/.pth/.pt, .safetensors, or a run folder (its last training checkpoint: raw and EMA weights)')
    .argument('<out>', 'OUT.ckpt / .pth / .pt (a torch.save zip the official code loads) or OUT.safetensors')
    .option('--config <yaml>', "the model's YAML: stored in a .safetensors output, and every key and shape checked against the model it builds")
    .option('--ema', 'write the EMA weights (model_ema.*) as the model weights')
    .action((input: string, output: string, o: { config?: string; ema?: boolean }) => { convertCommand(input, output, o); });

  program.command('demo')
    .description('sample the shipped MNIST model (or, with --train, train a small one from scratch first, ~15 min)')
    .option('--train', 'train configs/mnist-demo.yaml from scratch, then sample it')
    .option('--out <dir>', 'output folder', 'demo')
    .option('--seed <s>', 'sampling seed', int('--seed'), 0)
    .action(async (o: { train?: boolean; out: string; seed: number }) => {
      let ckpt: string | undefined;
      if (o.train) {
        const r = await trainCommand([join(ROOT, 'configs', 'mnist-demo.yaml')], { out: join(o.out, 'run') });
        ckpt = r.modelPath ?? undefined;
      }
      await sampleCommand(ckpt, {
        seed: o.seed, n: 100, out: join(o.out, 'mnist-samples.png'), strip: true, upscale: 2,
        model: 'mnist-ddpm',
      });
    });

  program.command('bench')
    .description('performance benchmark (kernels and a UNet training step); options after --, e.g. ldm bench -- --json')
    .helpOption(false)
    .allowUnknownOption()
    .argument('[args...]')
    .action(async (args: string[]) => {
      // `ldm bench --help` and `ldm bench -- --help` print the options instead of starting a run
      if (args.includes('--help') || args.includes('-h')) { console.log(BENCH_HELP); return; }
      process.exitCode = await benchMain(args);
    });

  program.command('parity')
    .description('run the official-code parity fixtures (default test/fixtures/parity)')
    .allowUnknownOption()
    .argument('[args...]')
    .action((args: string[]) => { process.exitCode = parityMain(args); });

  return program;
}

/** A closed stdout (`ldm inspect FILE | head -2`) ends the command quietly, as Unix tools do. */
let epipeHandled = false;
function quietOnEpipe(): void {
  if (epipeHandled) return;
  epipeHandled = true;
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
}

/** Run the CLI on argv (without node and script); returns the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  quietOnEpipe();
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode; // commander printed the message or help
    if (DEBUG > 0) console.error(e);
    else {
      const msg = e instanceof LdmError ? e.message : e instanceof Error ? `${e.name}: ${e.message}` : describe(e);
      console.error(`ldm: error: ${clip(msg.split('\n')[0] ?? '', 1000)}${msg.includes('\n') ? ' (DEBUG=1 for details)' : ''}`);
    }
    return 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: unknown) => { console.error(e); process.exitCode = 1; });
}
