// Padding-free variable-length batching (ByteTransformer), CPU, fp32, side by
// side in one run with tinybench: on ragged batches, vanilla and fused on the
// padded batch (with seqlensK, so all compute the same function),
// onnxruntime-node's MultiHeadAttention looped over the sequences (the best a
// Node user has today), and pack + varlenAttention + unpack end to end: into
// warm preallocated outs (how a server runs it) and into new outputs. Reports
// ms, useful GFLOP/s (the real lengths' FLOPs only), the ideal speedup, and
// pack / unpack, fresh and into a warm out, against a memcpy floor measured in
// the same run. Writes bench/results/varlen-<date>.json.
//   npm run bench:varlen                   every batch and head shape
//   node dist/bench/varlen.js --filter RE  only rows whose label matches RE
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import {
  attentionSync, vanillaAttentionSync, varlenAttentionSync, packSequences, unpackSequences, setNumThreads, backends,
  Tensor,
} from '../lib/index.js';
import { randomTensor } from './shapes.js';

const THREADS = 2;

interface Batch { name: string; lengths: number[] }
interface Heads { H: number; D: number }
type Outcome = { ms: number; gflops: number } | { unsupported: string };
/** ms: into a new output; outMs: into a warm opts.out. */
interface Copy { ms: number; outMs: number; bytes: number; floorMs: number; allocFloorMs: number }
interface Row {
  label: string; batch: string; B: number; H: number; D: number; maxlen: number; tokens: number;
  usefulFlops: number; idealSpeedup: number; idealVsFusedSeqlensK: number;
  results: Record<string, Outcome>; pack: Copy; unpack: Copy; varlenOnlyMs: number;
}

/** mulberry32: seeded lengths, the same batch every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const uniform = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

/** Fisher–Yates with the seeded generator. */
function shuffle<T>(a: T[], r: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function batches(): Batch[] {
  const r = rng(5);
  const longTail = [...Array.from({ length: 13 }, () => uniform(r, 16, 256)), ...Array.from({ length: 3 }, () => uniform(r, 3840, 4096))];
  return [
    { name: '16 × U[1,1024]', lengths: Array.from({ length: 16 }, () => uniform(r, 1, 1024)) },
    { name: '64 × U[1,1024]', lengths: Array.from({ length: 64 }, () => uniform(r, 1, 1024)) },
    // most short, a few near 4096, shuffled so the long ones are not all at the end
    { name: 'long tail 13 × U[16,256] + 3 × U[3840,4096]', lengths: shuffle(longTail, r) },
  ];
}

const HEADS: Heads[] = [{ H: 12, D: 64 }, { H: 16, D: 128 }];

/** Mean ms of fn over a tinybench of its own (its warm-up right before its samples), then a pause for pool threads to idle. */
async function time(fn: () => unknown, heavy: boolean): Promise<number | { unsupported: string }> {
  const bench = new Bench({ time: heavy ? 0 : 500, iterations: heavy ? 2 : 5, warmupTime: 0, warmupIterations: 1 });
  bench.add('x', fn);
  await bench.run();
  await sleep(100);
  const res = bench.tasks[0]!.result;
  if (res.state !== 'completed') return { unsupported: `${res.state}: ${'error' in res ? String(res.error) : ''}` };
  return res.latency.mean;
}

/** Buffer.prototype.copy of `bytes`: into a warm buffer (the memcpy floor) and into a new one (allocation + first touch). */
async function memcpyMs(bytes: number): Promise<{ warm: number; fresh: number }> {
  const src = Buffer.alloc(bytes, 1), dst = Buffer.alloc(bytes);
  const warm = await time(() => src.copy(dst), false);
  const fresh = await time(() => src.copy(Buffer.alloc(bytes)), false);
  if (typeof warm !== 'number' || typeof fresh !== 'number') throw new Error('memcpy timing failed');
  return { warm, fresh };
}

async function ortLoop(H: number, D: number, lengths: number[], packed: [Tensor, Tensor, Tensor], cu: Int32Array):
  Promise<{ run: () => Promise<void>; release: () => Promise<void> } | { unsupported: string }> {
  const ortModule = await import('./peers/ort.js').catch(() => undefined);
  if (!ortModule || !(await ortModule.loadOrt())) return { unsupported: 'onnxruntime-node is not installed' };
  // One session per distinct length, created before timing and reused.
  const sessions = new Map<number, Awaited<ReturnType<typeof ortModule.createOrtRunner>>>();
  for (const len of new Set(lengths)) {
    sessions.set(len, await ortModule.createOrtRunner('mha', { B: 1, H, S: len, D, causal: false, dtype: 'float32' }, THREADS));
  }
  for (const s of sessions.values()) if ('unsupported' in s) return s;
  const row = H * D;
  const [q, k, v] = packed.map((t) => t.data as Float32Array) as [Float32Array, Float32Array, Float32Array];
  const slice = (a: Float32Array, b: number) => a.subarray(cu[b]! * row, cu[b + 1]! * row);  // [1, len, H·D], no copy
  return {
    run: async () => {
      for (let b = 0; b < lengths.length; b++) {
        if (lengths[b] === 0) continue;
        const r = sessions.get(lengths[b]!)!;
        if (!('unsupported' in r)) await r.run(slice(q, b), slice(k, b), slice(v, b));
      }
    },
    release: async () => { for (const s of sessions.values()) if (!('unsupported' in s)) await s.release(); },
  };
}

async function benchRow(batch: Batch, { H, D }: Heads): Promise<Row> {
  const { lengths } = batch, B = lengths.length;
  const maxlen = Math.max(...lengths);
  const sumSq = lengths.reduce((a, l) => a + l * l, 0);
  const usefulFlops = 4 * H * D * sumSq;
  const label = `${batch.name}, H=${H} D=${D}`;
  const heavy = 4 * H * D * B * maxlen * maxlen > 2e11;
  const shape = [B, maxlen, H, D];
  const [q, k, v] = [1, 2, 3].map((seed) => randomTensor(shape, 'float32', seed)) as [Tensor, Tensor, Tensor];
  const seqlensK = Int32Array.from(lengths);
  const results: Record<string, Outcome> = {};
  const record = (name: string, t: number | { unsupported: string }) => {
    results[name] = typeof t === 'number' ? { ms: t, gflops: usefulFlops / t / 1e6 } : t;
  };

  record('vanilla padded', await time(() => vanillaAttentionSync(q, k, v, { seqlensK }), heavy));
  record('fused padded', await time(() => attentionSync(q, k, v, { seqlensK }), heavy));

  const packed = [q, k, v].map((t) => packSequences(t, lengths));
  const [pq, pk, pv] = packed as [ReturnType<typeof packSequences>, ReturnType<typeof packSequences>, ReturnType<typeof packSequences>];
  const cu = pq.cuSeqlens;
  const ort = await ortLoop(H, D, lengths, [pq.packed, pk.packed, pv.packed], cu);
  if ('unsupported' in ort) results['ort-mha loop'] = ort;
  else { record('ort-mha loop', await time(ort.run, false)); await ort.release(); }

  const varlen = (qq: Tensor, kk: Tensor, vv: Tensor, out?: Tensor) =>
    varlenAttentionSync(qq, kk, vv, { cuSeqlensQ: cu, cuSeqlensK: cu, maxSeqlenQ: maxlen, maxSeqlenK: maxlen, out });
  // A server's staging buffers: allocated once and touched, reused by every call.
  const warm = (like: Tensor) => new Tensor('float32', new Float32Array(like.size).fill(0), like.shape);
  const packOuts = [pq.packed, pk.packed, pv.packed].map(warm) as [Tensor, Tensor, Tensor];
  const varlenOut = warm(pq.packed), unpackOut = warm(q);
  record('pack+varlen+unpack', await time(() => {
    [q, k, v].forEach((t, i) => packSequences(t, lengths, { out: packOuts[i] }));
    return unpackSequences(varlen(...packOuts, varlenOut), cu, maxlen, { out: unpackOut });
  }, heavy));
  record('pack+varlen+unpack fresh', await time(() => {
    const [a, b, c] = [q, k, v].map((t) => packSequences(t, lengths).packed) as [Tensor, Tensor, Tensor];
    return unpackSequences(varlen(a, b, c), cu, maxlen);
  }, heavy));
  const varlenOnly = await time(() => varlen(pq.packed, pk.packed, pv.packed), heavy);
  const out = varlen(pq.packed, pk.packed, pv.packed);

  // Copies: pack writes T·H·D floats; unpack B·maxlen·H·D (into a new buffer only the real rows, its
  // pads are V8's zeros; into a warm out the pads are written as zeros too).
  const packBytes = pq.packed.data.byteLength, unpackBytes = q.data.byteLength;
  const packMs = await time(() => packSequences(q, lengths), false);
  const packOutMs = await time(() => packSequences(q, lengths, { out: packOuts[0] }), false);
  const unpackMs = await time(() => unpackSequences(out, cu, maxlen), false);
  const unpackOutMs = await time(() => unpackSequences(out, cu, maxlen, { out: unpackOut }), false);
  const mPack = await memcpyMs(packBytes), mUnpack = await memcpyMs(unpackBytes);
  const num = (x: number | { unsupported: string }) => (typeof x === 'number' ? x : NaN);

  return {
    label, batch: batch.name, B, H, D, maxlen, tokens: cu[B]!, usefulFlops,
    idealSpeedup: (B * maxlen * maxlen) / sumSq,
    idealVsFusedSeqlensK: (maxlen * lengths.reduce((a, l) => a + l, 0)) / sumSq,
    results,
    pack: { ms: num(packMs), outMs: num(packOutMs), bytes: packBytes, floorMs: mPack.warm, allocFloorMs: mPack.fresh },
    unpack: { ms: num(unpackMs), outMs: num(unpackOutMs), bytes: unpackBytes, floorMs: mUnpack.warm, allocFloorMs: mUnpack.fresh },
    varlenOnlyMs: num(varlenOnly),
  };
}

/** One 4096-token sequence among 63 of 16 tokens (issue 5): varlen on 1 thread vs 2, scheduling by cost. */
async function balance(): Promise<{ lengths: string; H: number; D: number; ms1: number; ms2: number; speedup: number }> {
  const lengths = [4096, ...Array<number>(63).fill(16)], H = 12, D = 64;
  const T = lengths.reduce((a, l) => a + l, 0);
  const [q, k, v] = [1, 2, 3].map((seed) => randomTensor([T, H, D], 'float32', seed)) as [Tensor, Tensor, Tensor];
  const cu = new Int32Array(lengths.length + 1);
  lengths.forEach((l, b) => { cu[b + 1] = cu[b]! + l; });
  const run = () => varlenAttentionSync(q, k, v, { cuSeqlensQ: cu, cuSeqlensK: cu });
  setNumThreads(1);
  const ms1 = await time(run, false);
  setNumThreads(THREADS);
  const ms2 = await time(run, false);
  if (typeof ms1 !== 'number' || typeof ms2 !== 'number') throw new Error('balance timing failed');
  return { lengths: '1 × 4096 + 63 × 16', H, D, ms1, ms2, speedup: ms1 / ms2 };
}

function printTable(rows: Row[]): void {
  const names = ['vanilla padded', 'fused padded', 'ort-mha loop', 'pack+varlen+unpack', 'pack+varlen+unpack fresh'];
  console.table(rows.map((r) => {
    const o: Record<string, string> = { batch: r.label, 'Σlen': String(r.tokens) };
    for (const n of names) {
      const x = r.results[n];
      o[n] = !x ? '' : 'ms' in x ? `${x.ms.toFixed(1)} ms ${x.gflops.toFixed(0)} GF/s` : 'n/a';
    }
    const ms = (n: string) => { const x = r.results[n]; return x && 'ms' in x ? x.ms : NaN; };
    const e2e = ms('pack+varlen+unpack');
    o['ideal (Σmax²/Σlen²)'] = `${r.idealSpeedup.toFixed(2)}x`;
    o['vs fused padded'] = `${(ms('fused padded') / e2e).toFixed(2)}x (${((ms('fused padded') / e2e) / r.idealSpeedup).toFixed(2)} of ideal; ideal vs seqlensK skip ${r.idealVsFusedSeqlensK.toFixed(2)}x)`;
    o['vs vanilla padded'] = `${(ms('vanilla padded') / e2e).toFixed(2)}x`;
    o['GF/s vs ort loop'] = `${(ms('ort-mha loop') / e2e).toFixed(2)}x`;
    return o;
  }));
  console.table(rows.map((r) => {
    const ms = (n: string) => { const x = r.results[n]; return x && 'ms' in x ? x.ms : NaN; };
    return {
      batch: r.label,
      'varlenAttention alone': `${r.varlenOnlyMs.toFixed(1)} ms ${(r.usefulFlops / r.varlenOnlyMs / 1e6).toFixed(0)} GF/s`,
      'alone vs fused padded / vanilla padded / ort loop':
        [ms('fused padded'), ms('vanilla padded'), ms('ort-mha loop')].map((m) => `${(m / r.varlenOnlyMs).toFixed(2)}x`).join(' / '),
    };
  }));
  // each copy fresh / into a warm out, and the warm memcpy floor over each
  const copy = (c: Copy) => ({
    ms: `${c.ms.toFixed(2)} / ${c.outMs.toFixed(2)}`,
    floor: `${c.floorMs.toFixed(2)} / ${c.allocFloorMs.toFixed(2)}`,
    vs: `${(c.floorMs / c.ms).toFixed(2)} / ${(c.floorMs / c.outMs).toFixed(2)}`,
  });
  console.table(rows.map((r) => {
    const p = copy(r.pack), u = copy(r.unpack);
    return {
      batch: r.label,
      'pack ms, 1 tensor (fresh / warm out)': p.ms,
      'pack floor ms (memcpy / alloc+memcpy)': p.floor,
      'pack vs floor (fresh / warm out)': p.vs,
      'unpack ms (fresh / warm out)': u.ms,
      'unpack floor ms (memcpy / alloc+memcpy)': u.floor,
      'unpack vs floor (fresh / warm out)': u.vs,
    };
  }));
}

async function main(): Promise<void> {
  const f = process.argv.indexOf('--filter');
  const filter = f > 0 ? new RegExp(process.argv[f + 1]!) : undefined;
  setNumThreads(THREADS);
  const rows: Row[] = [];
  for (const batch of batches()) {
    for (const heads of HEADS) {
      const label = `${batch.name}, H=${heads.H} D=${heads.D}`;
      if (filter && !filter.test(label)) continue;
      process.stderr.write(`${label}\n`);
      rows.push(await benchRow(batch, heads));
    }
  }
  const bal = await balance();
  console.log(`fmha varlen, CPU fp32, ${THREADS} threads (${backends().cpu.isa}); onnxruntime-node intra-op threads ${THREADS}`);
  console.log('GF/s: useful FLOPs 4·H·D·Σlen² (non-causal) ÷ time; ideal = B·maxlen²/Σlen² (padded work ÷ useful work);');
  console.log('"ideal vs seqlensK skip" = maxlen·Σlen/Σlen²: fused padded with seqlensK already skips masked key blocks, so this is what removing the pad query rows can still save');
  console.log('pack+varlen+unpack: into warm preallocated outs (pack, varlenAttention and unpack opts.out), as a server runs it; the "vs" ratios use it; "fresh": new outputs every call');
  console.log('copy floors: bytes the call writes ÷ Buffer.copy speed on a buffer of that size, into a warm buffer / into a new Buffer.alloc one;');
  console.log('"vs floor" = warm memcpy floor ÷ the call\'s time (1 = memcpy speed), for the call into a new output / into a warm opts.out');
  printTable(rows);
  console.log(`scheduling by cost: varlen on ${bal.lengths}, H=${bal.H} D=${bal.D}: 1 thread ${bal.ms1.toFixed(2)} ms, ${THREADS} threads ${bal.ms2.toFixed(2)} ms (${bal.speedup.toFixed(2)}x)`);

  const date = new Date().toISOString().slice(0, 10);
  const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = `${dir}varlen-${date}.json`;
  const command = process.argv.slice(1).map((a) => a.replace(/^.*\/dist\//, 'dist/')).join(' ');
  writeFileSync(file, JSON.stringify({
    command: `node ${command}`, date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model,
    backends: backends().cpu, threads: THREADS,
    definitions: {
      gflops: '4·H·D·Σlen² (useful, non-causal) ÷ mean time',
      idealSpeedup: 'B·maxlen² / Σlen²',
      idealVsFusedSeqlensK: 'maxlen·Σlen / Σlen² (fused padded skips key blocks past seqlensK)',
      copyFloor: 'bytes written ÷ Buffer.prototype.copy rate on a buffer of that size (floorMs: warm target; allocFloorMs: new Buffer.alloc target)',
      pack: 'packSequences of one padded [B, maxlen, H, D] tensor (ms: new output; outMs: into a warm opts.out)',
      unpack: 'unpackSequences of the varlen output to [B, maxlen, H, D] (ms: new output; outMs: into a warm opts.out, pads written as zeros)',
      e2e: "'pack+varlen+unpack': pack q, k, v, varlenAttentionSync, unpack, each into a warm preallocated opts.out; 'pack+varlen+unpack fresh': new outputs",
    },
    rows, balance: bal,
  }, null, 2) + '\n');
  console.log(`results: ${file}`);
}

await main();
