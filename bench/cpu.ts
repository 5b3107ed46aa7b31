// CPU benchmark suite: fused vs vanilla vs onnxruntime-node (the peer a Node
// user would otherwise pick), side by side in one run with tinybench, read
// against the machine's FMA rate measured in the same run. Prints a table of
// ms, GFLOP/s, % of the FMA peak and ratios; writes bench/results/cpu-<date>.json
// and an SVG chart next to it.
//   npm run bench                       the full grid (B, H, D, S, causal, dtype)
//   node dist/bench/cpu.js --filter RE  only shapes whose label matches RE
//   npx fmha bench                      a short grid with a progress bar
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import { attentionSync, vanillaAttentionSync, backends, measureCpuPeak, measureMemoryBandwidth } from '../lib/index.js';
import { renderChartPanels, type ChartSpec } from './chart.js';
import { attentionFlops, label, qkv, type Shape } from './shapes.js';

type Outcome = { ms: number; gflops: number; peakFraction: number } | { unsupported: string };
interface Row extends Shape { shape: string; results: Record<string, Outcome> }
interface RssRow { kernel: string; S: number; peakRssBytes?: number; baselineRssBytes?: number; inputBytes?: number; ms?: number; error?: string }
interface Runner { run: () => unknown; release?: () => Promise<void> }
interface Impl { name: string; prepare(s: Shape): Promise<Runner | { unsupported: string }> }

export interface BenchOptions { full: boolean; progress: boolean; filter?: RegExp }

const ORT_GRAPHS = ['mha', 'gqa', 'matmul'] as const;

// Vanilla's passes over its Sq×Sk float32 score matrix beyond fused's work:
// the Q·Kᵀ write, the mask read+write, the row-max read, the exp read+write and
// the P·V read (vanilla_attention.cc); fused keeps its score tile in L1.
const VANILLA_SCORE_PASSES = 7;

/**
 * The vanilla/fused ratio that vanilla's extra memory traffic alone explains:
 * (fused time × the FLOPs vanilla does that fused skips (2× for causal) +
 * score-matrix bytes ÷ measured read bandwidth) ÷ fused time.
 */
function vanillaModel(s: Shape, fusedMs: number, gbps: number): number {
  const bytes = VANILLA_SCORE_PASSES * 4 * s.B * s.H * s.S * s.S;
  return (fusedMs * (s.causal ? 2 : 1) + bytes / gbps / 1e6) / fusedMs;
}

function grid(full: boolean): Shape[] {
  const out: Shape[] = [];
  const dims = full
    ? { B: [1, 8], H: [8, 16], D: [64, 128], S: [128, 512, 1024, 2048, 4096], dtype: ['float32', 'bfloat16'] as const }
    : { B: [1], H: [8], D: [64], S: [512, 2048], dtype: ['float32', 'bfloat16'] as const };
  for (const dtype of dims.dtype)
    for (const B of dims.B)
      for (const H of dims.H)
        for (const D of dims.D)
          for (const S of dims.S)
            for (const causal of [false, true]) {
              if (!full && dtype === 'bfloat16' && (S !== 2048 || causal)) continue;
              out.push({ B, H, S, D, causal, dtype });
            }
  return out;
}

/** fmha's own kernels plus, when onnxruntime-node is installed, its three graphs. */
async function implementations(threads: number): Promise<Impl[]> {
  const impls: Impl[] = [
    { name: 'fused', prepare: async (s) => { const [q, k, v] = qkv(s); return { run: () => attentionSync(q, k, v, { causal: s.causal }) }; } },
    { name: 'vanilla', prepare: async (s) => { const [q, k, v] = qkv(s); return { run: () => vanillaAttentionSync(q, k, v, { causal: s.causal }) }; } },
  ];
  const ortModule = await import('./peers/ort.js').catch(() => undefined);
  if (!ortModule || !(await ortModule.loadOrt())) return impls;
  for (const graph of ORT_GRAPHS) {
    impls.push({
      name: `ort-${graph}`,
      prepare: async (s) => {
        if (s.dtype !== 'float32') return { unsupported: `onnxruntime-node's CPU EP has no ${s.dtype} attention kernels` };
        // Every graph but MultiHeadAttention's non-causal flash path materializes the whole
        // B·H·S² score tensor (and its softmax): skip shapes that would exhaust memory.
        const scoreBytes = 2 * 4 * s.B * s.H * s.S * s.S;
        if (!(graph === 'mha' && !s.causal) && scoreBytes > 0.4 * totalmem())
          return { unsupported: `needs ~${(scoreBytes / 2 ** 30).toFixed(0)} GiB for its B·H·S² scores (machine: ${(totalmem() / 2 ** 30).toFixed(0)} GiB)` };
        const r = await ortModule.createOrtRunner(graph, { ...s, dtype: s.dtype }, threads);
        if ('unsupported' in r) return r;
        const [q, k, v] = qkv(s).map((t) => t.data as Float32Array);
        return { run: () => r.run(q, k, v), release: () => r.release() };
      },
    });
  }
  return impls;
}

function peakRss(kernel: string, S: number, D: number): RssRow {
  const script = fileURLToPath(new URL('./rss.js', import.meta.url));
  return JSON.parse(execFileSync(process.execPath, [script, kernel, String(S), String(D)], { encoding: 'utf8' })) as RssRow;
}

function bar(done: number, total: number, what: string): void {
  if (!process.stderr.isTTY) return;
  const w = 30, n = Math.round((done / total) * w);
  process.stderr.write(`\r[${'#'.repeat(n)}${'.'.repeat(w - n)}] ${done}/${total} ${what.padEnd(48)}`);
  if (done === total) process.stderr.write('\n');
}

/**
 * Every implementation on one shape, one after another in this run. Each gets
 * its own tinybench (its warm-up right before its samples: a Bench warms all
 * tasks up first, which would time fmha while onnxruntime's threads still spin
 * from their warm-up) and a pause after it for those threads to go idle.
 */
async function benchShape(s: Shape, impls: Impl[], peak: number): Promise<Row> {
  const flops = attentionFlops(s);
  const big = flops > 5e10;  // enough samples for a stable mean without minutes on the largest shapes
  const results: Record<string, Outcome> = {};
  for (const impl of impls) {
    const r = await impl.prepare(s);
    if (!('run' in r)) { results[impl.name] = r; continue; }
    // Two warm-up calls: onnxruntime's first runs grow its memory arena and are 2-7x slower.
    const bench = new Bench({ time: big ? 0 : 400, iterations: big ? 2 : 5, warmupTime: 0, warmupIterations: 2 });
    bench.add(impl.name, r.run);
    await bench.run();
    await r.release?.();
    await sleep(100);
    const res = bench.tasks[0]!.result;
    if (res.state !== 'completed') { results[impl.name] = { unsupported: `${res.state}: ${'error' in res ? String(res.error) : ''}` }; continue; }
    const ms = res.latency.mean, gflops = flops / ms / 1e6;
    results[impl.name] = { ms, gflops, peakFraction: gflops / peak };
  }
  return { shape: label(s), ...s, results };
}

const ms = (o: Outcome | undefined) => (o && 'ms' in o ? o.ms : undefined);

/** Fastest onnxruntime-node graph on this shape (for causal shapes GroupQueryAttention counts too). */
function bestOrt(row: Row): { name: string; ms: number } | undefined {
  let best: { name: string; ms: number } | undefined;
  for (const g of ORT_GRAPHS) {
    const m = ms(row.results[`ort-${g}`]);
    if (m !== undefined && (!best || m < best.ms)) best = { name: `ort-${g}`, ms: m };
  }
  return best;
}

function printTable(rows: Row[], names: string[], gbps: number): void {
  console.table(rows.map((r) => {
    const out: Record<string, string> = { shape: r.shape };
    for (const n of names) {
      const o = r.results[n];
      out[n] = !o ? '' : 'ms' in o ? `${o.ms.toFixed(2)} ms ${o.gflops.toFixed(0)} GF/s ${(o.peakFraction * 100).toFixed(0)}%` : 'n/a';
    }
    const f = ms(r.results.fused), va = ms(r.results.vanilla), ort = bestOrt(r);
    out['fused/vanilla'] = f && va ? `${(va / f).toFixed(2)}x (model ${vanillaModel(r, f, gbps).toFixed(2)}x)` : '';
    out['fused/best ort'] = f && ort ? `${(ort.ms / f).toFixed(2)}x (${ort.name})` : '';
    return out;
  }));
}

/** One panel per (dtype, B, H, D): GFLOP/s per S and mask, every implementation, the FMA peak as a line. */
function chart(rows: Row[], names: string[], peak: number, title: string): string {
  const panels = new Map<string, Row[]>();
  for (const r of rows) {
    const key = `${r.dtype}, B=${r.B}, H=${r.H}, D=${r.D}`;
    panels.set(key, [...(panels.get(key) ?? []), r]);
  }
  const specs: ChartSpec[] = [...panels].map(([key, rs]) => ({
    title: `${title}: ${key}`,
    yLabel: 'GFLOP/s',
    groups: rs.map((r) => `S=${r.S}${r.causal ? ' causal' : ''}`),
    series: names.map((n) => ({ name: n, values: rs.map((r) => { const o = r.results[n]; return o && 'gflops' in o ? o.gflops : null; }) })),
    refLines: [{ label: 'measured FMA peak', value: peak }],
  }));
  return renderChartPanels(specs, 2);
}

export async function runCpuBench(opts: BenchOptions): Promise<void> {
  const shapes = grid(opts.full).filter((s) => !opts.filter || opts.filter.test(label(s)));
  const threads = backends().cpu.threads;
  const impls = await implementations(threads);
  const names = impls.map((i) => i.name);
  if (!names.includes('ort-mha')) console.log('onnxruntime-node is not installed: the peer columns are skipped (it is a devDependency of fmha).');

  const peakBefore = measureCpuPeak(0.5).gflops;
  const gbps = measureMemoryBandwidth(1024).gbps;
  const rows: Row[] = [];
  for (const [i, s] of shapes.entries()) {
    if (opts.progress) bar(i, shapes.length, label(s));
    rows.push(await benchShape(s, impls, peakBefore));
  }
  const peakAfter = measureCpuPeak(0.5).gflops;
  const peak = Math.max(peakBefore, peakAfter);
  if (opts.progress) bar(shapes.length, shapes.length, 'peak RSS');

  // Fused memory is O(S·D), vanilla's O(S²): one call each in a fresh process.
  const rss: RssRow[] = [];
  for (const S of opts.full ? [1024, 4096, 16384] : [1024, 4096]) rss.push(peakRss('fused', S, 64));
  for (const S of [1024, 4096]) rss.push(peakRss('vanilla', S, 64));

  console.log(`measured FMA peak: ${peakBefore.toFixed(0)} GFLOP/s before, ${peakAfter.toFixed(0)} after (${threads} threads, ${backends().cpu.isa}); % columns use ${peak.toFixed(0)}`);
  console.log(`measured read bandwidth: ${gbps.toFixed(1)} GB/s; "model" = vanilla/fused explained by vanilla's ${VANILLA_SCORE_PASSES} score-matrix passes (+2x FLOPs when causal)`);
  printTable(rows, names, gbps);
  console.table(rss.map((r) => ({
    kernel: r.kernel, S: r.S, 'peak RSS MiB': r.peakRssBytes ? (r.peakRssBytes / 2 ** 20).toFixed(0) : r.error,
    'before call MiB': r.baselineRssBytes ? (r.baselineRssBytes / 2 ** 20).toFixed(0) : '',
    'inputs MiB': r.inputBytes ? (r.inputBytes / 2 ** 20).toFixed(0) : '', ms: r.ms?.toFixed(1) ?? '',
  })));

  const date = new Date().toISOString().slice(0, 10);
  const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  // A filtered run gets its own file, so it never overwrites the whole grid's results.
  const tag = opts.filter ? `-${opts.filter.source.replace(/[^A-Za-z0-9=]+/g, '_').replace(/^_+|_+$/g, '')}` : '';
  const base = `${dir}cpu-${date}${opts.full ? '' : '-short'}${tag}`;
  const command = process.argv.slice(1).map((a) => a.replace(/^.*\/dist\//, 'dist/')).join(' ');
  writeFileSync(`${base}.json`, JSON.stringify({
    command: `node ${command}`, date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model,
    backends: backends().cpu, peakGflops: { before: peakBefore, after: peakAfter }, readGbps: gbps,
    vanillaModel: `(fused ms × (2 if causal) + ${VANILLA_SCORE_PASSES}·4·B·H·S² bytes ÷ read GB/s) ÷ fused ms`,
    flops: '4·B·H·Sq·Sk·D, halved for causal', implementations: names, rows, rss,
  }, null, 2) + '\n');
  writeFileSync(`${base}.svg`, chart(rows, names, peak, `fmha CPU attention, ${threads} threads`));
  console.log(`results: ${base}.json and .svg`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const f = process.argv.indexOf('--filter');
  await runCpuBench({ full: !process.argv.includes('--short'), progress: true, filter: f > 0 ? new RegExp(process.argv[f + 1]!) : undefined });
}
