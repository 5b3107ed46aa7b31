// CPU benchmark: fused vs vanilla, side by side in one run (tinybench), with
// GFLOP/s and the fused/vanilla ratio per shape, plus the peak RSS of each
// kernel in a fresh process. `npm run bench` runs the grid; `npx fmha bench` a
// short version. Results go to bench/results/cpu-<date>.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import { attentionSync, vanillaAttentionSync, backends } from '../lib/index.js';
import { attentionFlops, label, qkv, type Shape } from './shapes.js';

interface Row { shape: string; fusedMs: number; vanillaMs: number; fusedGflops: number; vanillaGflops: number; speedup: number }
interface RssRow { kernel: string; S: number; peakRssBytes?: number; baselineRssBytes?: number; ms?: number; error?: string }

function grid(full: boolean): Shape[] {
  const out: Shape[] = [];
  const seqs = full ? [128, 512, 1024, 2048, 4096] : [512, 2048];
  for (const D of full ? [64, 128] : [64])
    for (const S of seqs)
      for (const causal of [false, true]) out.push({ B: 1, H: 8, S, D, causal, dtype: 'float32' });
  return out;
}

function peakRss(kernel: string, S: number): RssRow {
  const script = fileURLToPath(new URL('./rss.js', import.meta.url));
  return JSON.parse(execFileSync(process.execPath, [script, kernel, String(S)], { encoding: 'utf8' })) as RssRow;
}

function bar(done: number, total: number, what: string): void {
  if (!process.stderr.isTTY) return;
  const w = 30, n = Math.round((done / total) * w);
  process.stderr.write(`\r[${'#'.repeat(n)}${'.'.repeat(w - n)}] ${done}/${total} ${what.padEnd(40)}`);
  if (done === total) process.stderr.write('\n');
}

export async function runCpuBench(opts: { full: boolean; progress: boolean }): Promise<void> {
  const shapes = grid(opts.full);
  const rows: Row[] = [];
  for (const [i, s] of shapes.entries()) {
    if (opts.progress) bar(i, shapes.length, label(s));
    const [q, k, v] = qkv(s);
    const bench = new Bench({ time: opts.full ? 1000 : 300, warmupTime: 100, warmupIterations: 2, iterations: 3 });
    bench.add('fused', () => { attentionSync(q, k, v, { causal: s.causal }); });
    bench.add('vanilla', () => { vanillaAttentionSync(q, k, v, { causal: s.causal }); });
    await bench.run();
    const ms = (name: string) => {
      const r = bench.tasks.find((t) => t.name === name)!.result;
      if (r.state !== 'completed') throw new Error(`${name} on ${label(s)}: ${r.state}`);
      return r.latency.mean;
    };
    const f = ms('fused'), va = ms('vanilla'), flops = attentionFlops(s);
    rows.push({ shape: label(s), fusedMs: f, vanillaMs: va, fusedGflops: flops / f / 1e6, vanillaGflops: flops / va / 1e6, speedup: va / f });
  }
  if (opts.progress) bar(shapes.length, shapes.length, 'peak RSS');
  const rss: RssRow[] = [peakRss('fused', 2048), peakRss('vanilla', 2048)];

  console.table(rows.map((r) => ({
    shape: r.shape, 'fused ms': r.fusedMs.toFixed(2), 'vanilla ms': r.vanillaMs.toFixed(2),
    'fused GFLOP/s': r.fusedGflops.toFixed(1), 'vanilla GFLOP/s': r.vanillaGflops.toFixed(1), 'fused/vanilla': r.speedup.toFixed(2) + 'x',
  })));
  console.table(rss.map((r) => ({
    kernel: r.kernel, S: r.S, 'peak RSS MiB': r.peakRssBytes ? (r.peakRssBytes / 2 ** 20).toFixed(0) : r.error,
    'before call MiB': r.baselineRssBytes ? (r.baselineRssBytes / 2 ** 20).toFixed(0) : '', ms: r.ms?.toFixed(1) ?? '',
  })));

  const date = new Date().toISOString().slice(0, 10);
  const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = `${dir}cpu-${date}.json`;
  writeFileSync(file, JSON.stringify({
    command: `fmha bench${opts.full ? ' --full' : ''}`, date: new Date().toISOString(), node: process.version,
    cpu: cpus()[0]?.model, backends: backends().cpu, flops: '4·B·H·Sq·Sk·D, halved for causal', rows, rss,
  }, null, 2) + '\n');
  console.log(`results: ${file}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await runCpuBench({ full: !process.argv.includes('--short'), progress: true });
}
