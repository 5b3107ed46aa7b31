// GPU benchmark: fmha's fused CUDA kernel vs its vanilla CUDA baseline (scores
// materialized), and PyTorch SDPA's flash and cuDNN backends as peers, on the
// same shapes in the same run. Writes bench/results/gpu-<date>.json and prints
// a table last.
//
//   npm run bench:gpu                    the grid below
//   node dist/bench/gpu.js --quick       S ∈ {1k, 4k}, float16 only (a sanity run)
//   node dist/bench/gpu.js --filter RE   only shapes whose label matches RE
//   node dist/bench/gpu.js --no-peers    without PyTorch
//
// Grid: D = 128, H = 16, B·S = 16k tokens, S ∈ {512, 1k, 2k, 4k, 8k, 16k},
// float16 and bfloat16, causal and not; the B = 4, S = 4096 rows are the
// headline fused-vs-vanilla comparison. Timing: fmha's cudaTimeAttention
// enqueues `iters` calls on DeviceTensors back to back between two CUDA events
// after a warm-up call (so neither JS nor the dispatcher is in the number); the
// median of 5 such runs is reported, with the spread. `e2e` is the median of
// awaited `attention()` calls from JS (dispatch, launch and the wait included).
// TFLOP/s = 4·B·H·Sq·Sk·D / time, halved for causal (the visible half).
// Before timing, each shape's fused output is checked against vanilla's.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { attention, vanillaAttention, backends, toDevice, type DeviceTensor } from '../lib/index.js';
import { native } from '../lib/native.js';
import { attentionFlops, label, qkv, type Shape } from './shapes.js';

type Timing = { ms: number; minMs: number; maxMs: number; iters: number; tflops: number } | { unsupported: string };
interface Row extends Shape { shape: string; results: Record<string, Timing>; e2eMs?: number; fusedVsVanillaRelErr?: number }

const TOKENS = 16384;

function grid(quick: boolean): Shape[] {
  const out: Shape[] = [];
  const seqs = quick ? [1024, 4096] : [512, 1024, 2048, 4096, 8192, 16384];
  const dtypes = quick ? (['float16'] as const) : (['float16', 'bfloat16'] as const);
  for (const dtype of dtypes)
    for (const S of seqs)
      for (const causal of [false, true]) out.push({ B: TOKENS / S, H: 16, S, D: 128, causal, dtype });
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Milliseconds per call of `kind` on device tensors: median of 5 CUDA-event-timed runs of ~250 ms each. */
function timeKernel(kind: 'fused' | 'vanilla', s: Shape, d: DeviceTensor[]): Timing {
  const [q, k, v] = d as [DeviceTensor, DeviceTensor, DeviceTensor];
  const opts = { causal: s.causal };
  try {
    const once = native.cudaTimeAttention(kind, q, k, v, opts, 1);
    const iters = Math.max(3, Math.min(500, Math.ceil(250 / Math.max(once, 1e-3))));
    const runs = Array.from({ length: 5 }, () => native.cudaTimeAttention(kind, q, k, v, opts, iters));
    const ms = median(runs);
    return { ms, minMs: Math.min(...runs), maxMs: Math.max(...runs), iters, tflops: attentionFlops(s) / ms / 1e9 };
  } catch (err) {
    return { unsupported: `${(err as { code?: string }).code ?? 'Error'}: ${(err as Error).message}` };
  }
}

/** Relative Frobenius distance of the fused output from vanilla's (a check of the kernels before timing them). */
async function crossCheck(d: DeviceTensor[], causal: boolean): Promise<number> {
  const [q, k, v] = d as [DeviceTensor, DeviceTensor, DeviceTensor];
  const f = await attention(q, k, v, { causal });
  const van = await vanillaAttention(q, k, v, { causal });
  const a = (await f.toHost()).toFloat32(), b = (await van.toHost()).toFloat32();
  f.dispose();
  van.dispose();
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { const x = a[i]! - b[i]!; num += x * x; den += b[i]! * b[i]!; }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

async function e2e(s: Shape, d: DeviceTensor[]): Promise<number> {
  const [q, k, v] = d as [DeviceTensor, DeviceTensor, DeviceTensor];
  const times: number[] = [];
  for (let i = 0; i < 12; i++) {
    const t0 = performance.now();
    const o = await attention(q, k, v, { causal: s.causal });
    times.push(performance.now() - t0);
    o.dispose();
  }
  return median(times.slice(2));
}

interface PeerReport { torch?: string; cuda?: string; cudnn?: number; device?: string; results?: Record<string, Record<string, Timing>>; error?: string }

/** Runs bench/peers/torch_sdpa.py on the same shapes in a child process; its JSON comes back on stdout. */
function runPeers(shapes: Shape[]): PeerReport {
  const script = fileURLToPath(new URL('../../bench/peers/torch_sdpa.py', import.meta.url));
  if (!existsSync(script)) return { error: `${script} not found` };
  const python = process.env.PYTHON ?? 'python3';
  console.error(`[fmha] running PyTorch SDPA peers (${python} ${script}) ...`);
  const r = spawnSync(python, [script], {
    input: JSON.stringify({ shapes: shapes.map((s) => ({ key: label(s), ...s, flops: attentionFlops(s) })) }),
    encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['pipe', 'pipe', 'inherit'], timeout: 20 * 60_000,
  });
  if (r.error) return { error: `could not run ${python}: ${r.error.message}` };
  if (r.status !== 0) return { error: `${python} exited with ${r.status ?? r.signal}` };
  try {
    return JSON.parse(r.stdout) as PeerReport;
  } catch {
    return { error: `could not parse the peer's output: ${r.stdout.slice(0, 200)}` };
  }
}

function nvidiaSmi(): string | undefined {
  const r = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm,power.limit', '--format=csv,noheader'],
    { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

const fmt = (t: Timing | undefined, w = 16) => {
  if (!t) return '—'.padStart(w);
  if ('unsupported' in t) return 'n/a'.padStart(w);
  return `${t.ms.toFixed(3)} ${t.tflops.toFixed(0).padStart(4)}T`.padStart(w);
};

export async function main(argv: string[]): Promise<number> {
  const cuda = backends().cuda;
  if (!cuda.available) {
    console.error(`bench:gpu: no CUDA GPU available (${cuda.reason}); this benchmark needs one.`);
    return 1;
  }
  const quick = argv.includes('--quick');
  const fi = argv.indexOf('--filter');
  const filter = fi >= 0 ? new RegExp(argv[fi + 1] ?? '') : undefined;
  const shapes = grid(quick).filter((s) => !filter || filter.test(label(s)));
  const gpu = cuda.devices[0]!;
  console.error(`[fmha] ${gpu.name} (sm_${gpu.computeCapability.replace('.', '')}, ${gpu.multiprocessors} SMs), ${shapes.length} shapes`);

  const rows: Row[] = [];
  for (const s of shapes) {
    const host = qkv(s);
    const d = [await toDevice(host[0]), await toDevice(host[1]), await toDevice(host[2])];
    const row: Row = { shape: label(s), ...s, results: {} };
    try {
      row.fusedVsVanillaRelErr = await crossCheck(d, s.causal);
      row.results.fused = timeKernel('fused', s, d);
      row.results.vanilla = timeKernel('vanilla', s, d);
      row.e2eMs = await e2e(s, d);
    } catch (err) {
      row.results.fused ??= { unsupported: String(err) };
    } finally {
      for (const t of d) t.dispose();
    }
    console.error(`[fmha] ${row.shape}: fused ${fmt(row.results.fused)}  vanilla ${fmt(row.results.vanilla)}  rel err ${row.fusedVsVanillaRelErr?.toExponential(2)}`);
    rows.push(row);
  }

  const peers = argv.includes('--no-peers') ? { error: 'skipped (--no-peers)' } : runPeers(shapes);
  for (const row of rows) {
    for (const [name, t] of Object.entries(peers.results?.[row.shape] ?? {})) row.results[`torch-${name}`] = t;
  }

  const date = new Date().toISOString().slice(0, 10);
  const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const tag = (quick ? '-quick' : '') + (filter ? `-${filter.source.replace(/[^A-Za-z0-9=.]+/g, '_')}` : '');
  const file = `${dir}gpu-${date}${tag}.json`;
  const command = process.argv.slice(1).map((a) => a.replace(/^.*\/dist\//, 'dist/')).join(' ');
  writeFileSync(file, JSON.stringify({
    command: `node ${command}`, date: new Date().toISOString(), node: process.version,
    gpu, nvidiaSmi: nvidiaSmi(), peers: { torch: peers.torch, cuda: peers.cuda, cudnn: peers.cudnn, device: peers.device, error: peers.error },
    timing: 'median of 5 runs; each run = iters calls between CUDA events after a warm-up call; TFLOP/s = 4·B·H·S²·D (halved causal) / time',
    rows,
  }, null, 2) + '\n');

  const names = ['fused', 'vanilla', 'torch-flash', 'torch-cudnn'];
  console.log(`\n${gpu.name}: ms and TFLOP/s per call (median of 5 timed runs); e2e = awaited attention() from JS`);
  console.log(['shape'.padEnd(36), ...names.map((n) => n.padStart(16)), 'fused/vanilla'.padStart(14), 'e2e ms'.padStart(9)].join(''));
  for (const r of rows) {
    const f = r.results.fused, v = r.results.vanilla;
    const ratio = f && v && 'ms' in f && 'ms' in v ? `${(v.ms / f.ms).toFixed(2)}×` : '—';
    console.log([r.shape.padEnd(36), ...names.map((n) => fmt(r.results[n])), ratio.padStart(14), (r.e2eMs?.toFixed(3) ?? '—').padStart(9)].join(''));
  }
  const head = rows.filter((r) => r.B === 4 && r.S === 4096);
  for (const r of head) {
    const f = r.results.fused, v = r.results.vanilla;
    if (f && v && 'ms' in f && 'ms' in v) console.log(`headline ${r.shape}: fused ${f.ms.toFixed(3)} ms vs vanilla ${v.ms.toFixed(3)} ms (${(v.ms / f.ms).toFixed(2)}× faster)`);
  }
  if (peers.error) console.log(`peers: ${peers.error}`);
  console.log(`results: ${file}`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err) => { console.error(err); process.exit(1); });
}
