// Decode over a KV cache (LeanAttention), CPU, side by side in one run with
// tinybench: step time (median) and achieved bandwidth (bytes of K and V read ÷ time)
// against this machine's read bandwidth measured in the same run on the same
// threads (measureMemoryBandwidth: a vectorized sum over a 1 GiB buffer at the
// start and end, and over 256 MiB right before and after each shape, whose mean
// the shape's percentages use: this shared machine's bandwidth moved between 22
// and 40 GB/s within one run), for the strategies lean (stream-K), split
// (FlashDecoding), single and auto.
// Writes bench/results/decode-<date>[-<filter>].json.
//   npm run bench:decode                   every shape
//   node dist/bench/decode.js --filter RE  only shapes whose label matches RE
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import {
  Tensor, decodeAttentionSync, measureMemoryBandwidth, setNumThreads, backends, type DType, type DecodeStrategy,
} from '../lib/index.js';

const THREADS = 2;
const STRATEGIES: DecodeStrategy[] = ['lean', 'split', 'single', 'auto'];
// The strategies are timed in ROUNDS round-robin passes, and each keeps its
// best median: the machine's drift over a shape's seconds then hits every
// strategy alike. lean's spread across rounds is the run-to-run variation that
// 'auto' vs the best strategy is judged against.
const ROUNDS = 3;

interface Case { label: string; lengths: number[]; Hq: number; Hkv: number; D: number; dtype: DType }
interface Row extends Case {
  bytes: number;
  /** Read bandwidth (GB/s) probed right before and after this shape's runs; percentages use their mean. */
  bandwidthGbps: { before: number; after: number };
  results: Record<string, { ms: number; gbps: number; ofBandwidth: number; roundsMs: number[] } | { unsupported: string }>;
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const dtype of ['float32', 'bfloat16'] as DType[])
    for (const B of [1, 8])
      for (const L of [1024, 8192, 32768, 131072])
        out.push({ label: `B=${B} L=${L / 1024}k Hq=32 Hkv=8 D=128 ${dtype}`, lengths: Array<number>(B).fill(L), Hq: 32, Hkv: 8, D: 128, dtype });
  for (const dtype of ['float32', 'bfloat16'] as DType[])
    out.push({ label: `ragged 64k + 7 × 1k Hq=32 Hkv=8 D=128 ${dtype}`, lengths: [65536, ...Array<number>(7).fill(1024)], Hq: 32, Hkv: 8, D: 128, dtype });
  // Fewer or very unequal work items than workers: where stream-K shows.
  out.push({ label: 'MQA B=1 L=128k Hq=32 Hkv=1 D=128 float32', lengths: [131072], Hq: 32, Hkv: 1, D: 128, dtype: 'float32' });
  out.push({ label: 'MQA B=3 L=[128k,2k,2k] Hq=32 Hkv=1 D=128 float32', lengths: [131072, 2048, 2048], Hq: 32, Hkv: 1, D: 128, dtype: 'float32' });
  return out;
}

/** A tensor of non-zero values in (−1, 1) without one random draw per element (caches reach gigabytes). */
function fillTensor(shape: number[], dtype: DType, seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const chunk = Math.min(n, 1 << 16);
  const seedValues = new Float32Array(chunk);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < chunk; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    seedValues[i] = (s / 2 ** 32) * 1.8 - 0.9 || 0.5;
  }
  const head = Tensor.fromFloat32(seedValues, [chunk], dtype).data;
  const data = dtype === 'float32' ? new Float32Array(n) : new Uint16Array(n);
  data.set(head as never);
  for (let filled = chunk; filled < n; filled *= 2) data.copyWithin(filled, 0, Math.min(filled, n - filled));
  return new Tensor(dtype, data, shape);
}

async function time(fn: () => unknown): Promise<number | { unsupported: string }> {
  const bench = new Bench({ time: 250, iterations: 5, warmupTime: 0, warmupIterations: 2 });
  bench.add('x', fn);
  await bench.run();
  await sleep(100);
  const res = bench.tasks[0]!.result;
  if (res.state !== 'completed') return { unsupported: `${res.state}: ${'error' in res ? String(res.error) : ''}` };
  return res.latency.p50;  // the median: one hiccup of this shared machine does not move it
}

const probe = (): number => measureMemoryBandwidth(256).gbps;

async function benchCase(c: Case): Promise<Row | undefined> {
  const B = c.lengths.length, cap = Math.max(...c.lengths);
  const elemBytes = c.dtype === 'float32' ? 4 : 2;
  const cacheBytes = 2 * B * cap * c.Hkv * c.D * elemBytes;
  if (cacheBytes > 0.45 * totalmem()) {
    console.log(`skip ${c.label}: its cache (${(cacheBytes / 2 ** 30).toFixed(1)} GiB) exceeds 45% of memory`);
    return undefined;
  }
  const k = fillTensor([B, cap, c.Hkv, c.D], c.dtype, 2);
  const v = fillTensor([B, cap, c.Hkv, c.D], c.dtype, 3);
  const q = fillTensor([B, c.Hq, c.D], c.dtype, 1);
  const lens = Int32Array.from(c.lengths);
  const bytes = c.lengths.reduce((a, l) => a + l, 0) * c.Hkv * 2 * c.D * elemBytes;
  const before = probe();
  const rounds = new Map<DecodeStrategy, number[]>(STRATEGIES.map((st) => [st, []]));
  const failed = new Map<DecodeStrategy, { unsupported: string }>();
  for (let round = 0; round < ROUNDS; round++)
    for (const strategy of STRATEGIES) {
      const t = await time(() => decodeAttentionSync(q, k, v, lens, { strategy }));
      if (typeof t === 'number') rounds.get(strategy)!.push(t);
      else failed.set(strategy, t);
    }
  const after = probe(), local = (before + after) / 2;
  const results: Row['results'] = {};
  for (const strategy of STRATEGIES) {
    const ts = rounds.get(strategy)!;
    if (failed.has(strategy)) { results[strategy] = failed.get(strategy)!; continue; }
    const t = Math.min(...ts);
    results[strategy] = { ms: t, gbps: bytes / t / 1e6, ofBandwidth: bytes / t / 1e6 / local, roundsMs: ts };
  }
  return { ...c, bytes, bandwidthGbps: { before, after }, results };
}

function printTable(rows: Row[]): void {
  const ms = (r: Row, s: string) => { const x = r.results[s]; return x && 'ms' in x ? x.ms : NaN; };
  console.table(rows.map((r) => {
    const o: Record<string, string> = {
      shape: r.label, 'MiB read': (r.bytes / 2 ** 20).toFixed(0),
      'probe GB/s': `${r.bandwidthGbps.before.toFixed(0)}/${r.bandwidthGbps.after.toFixed(0)}`,
    };
    for (const s of STRATEGIES) {
      const x = r.results[s];
      o[s] = !x ? '' : 'ms' in x ? `${x.ms.toFixed(2)} ms ${x.gbps.toFixed(1)} GB/s (${(100 * x.ofBandwidth).toFixed(0)}%)` : 'n/a';
    }
    const best = Math.min(...STRATEGIES.filter((s) => s !== 'auto').map((s) => ms(r, s)));
    o['lean/single'] = `${(ms(r, 'single') / ms(r, 'lean')).toFixed(2)}x`;
    o['lean/split'] = `${(ms(r, 'split') / ms(r, 'lean')).toFixed(2)}x`;
    o['auto/best'] = `${(best / ms(r, 'auto')).toFixed(2)}x`;
    const lean = r.results['lean'];
    o['spread'] = lean && 'roundsMs' in lean ? `${(100 * (Math.max(...lean.roundsMs) / Math.min(...lean.roundsMs) - 1)).toFixed(0)}%` : '';
    return o;
  }));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const fi = args.indexOf('--filter');
  const filter = fi >= 0 ? new RegExp(args[fi + 1] ?? '') : undefined;
  setNumThreads(THREADS);
  const bw = measureMemoryBandwidth(1024);
  console.log(`read bandwidth (vectorized sum over 1 GiB, ${bw.threads} threads): ${bw.gbps.toFixed(1)} GB/s`);
  const rows: Row[] = [];
  for (const c of cases()) {
    if (filter && !filter.test(c.label)) continue;
    const r = await benchCase(c);
    if (r) { rows.push(r); printTable([r]); }
  }
  const bwEnd = measureMemoryBandwidth(1024);
  console.log(`read bandwidth at the end: ${bwEnd.gbps.toFixed(1)} GB/s`);
  printTable(rows);

  const date = new Date().toISOString().slice(0, 10);
  const tag = filter ? `-${(args[fi + 1] ?? '').replace(/[^A-Za-z0-9=_.-]+/g, '_')}` : '';
  const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = `${dir}decode-${date}${tag}.json`;
  writeFileSync(file, JSON.stringify({
    command: `node dist/bench/decode.js${args.length ? ' ' + args.join(' ') : ''}`,
    date: new Date().toISOString(), cpu: cpus()[0]?.model, threads: THREADS, isa: backends().cpu.isa,
    readBandwidthGbps: { start: bw.gbps, end: bwEnd.gbps, bufferBytes: bw.bytes },
    rows,
  }, null, 2));
  console.log(`wrote ${file}`);
}

await main();
