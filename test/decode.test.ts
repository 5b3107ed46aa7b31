// Decode over a KV cache held in tensors (DESIGN §3, §5): decodeAttention /
// decodeAttentionSync against a float64 reference built per sequence from
// test/reference.ts (each sequence's first cacheSeqlens[b] keys, gathered through
// the block table when paged). Covers every dtype, odd head dims and group sizes,
// ragged lengths (0, 1, 17, 4096 and one of 100000), rank-3 and rank-4 q with and
// without causal, window, softcap, ALiBi, scale, every strategy (equal to each
// other within float32 rounding, bitwise run to run), paged caches (random page
// permutations, garbage block-table entries past each length), strided caches,
// the fused append of kNew/vNew, sync and async, thread counts, AbortSignal,
// and malformed calls → FmhaError (async rejects, sync throws; nothing written).
//
// Every output is poisoned with NaN (opts.out) so an element the kernel fails to
// write fails the check; every cache row a call must not read (past a length, an
// unused page) holds NaN so reading it fails the check too.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Tensor, FmhaError, decodeAttention, decodeAttentionSync, setNumThreads, backends,
  type DecodeAttentionOptions, type AttentionWithLse, type DType, type FmhaErrorCode, type DecodeStrategy,
} from '../lib/index.js';
import {
  referenceAttention, readValues, relFrobenius, compareLse, bitwiseEqual, rng, product,
  OUT_TOL, LSE_TOL, type RefOptions, type TensorLike,
} from './reference.js';
import { randomTensor, nanTensor, nanData, alibi, assertFmhaError, catchAsync, catchSync, describe, checkNoKeyRows, checkLse, type Mode } from './helpers.js';
import { native } from '../lib/native.js';

type Opts = Omit<DecodeAttentionOptions, 'returnLse' | 'out' | 'blockTable' | 'kNew' | 'vNew' | 'signal'>;

const STRATEGIES: readonly DecodeStrategy[] = ['lean', 'split', 'single', 'auto'];
const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];

// ---------------------------------------------------------------------------
// The reference: referenceAttention per sequence, on the keys the cache holds.

interface DecodeRef {
  out: Float64Array;   // [B, Sq, Hq, Dv] (== [B, Hq, Dv] for a rank-3 q)
  lse: Float64Array;   // [B, Hq, Sq]
  noKey: Uint8Array;   // [B, Hq, Sq]
  outShape: number[];
  lseShape: number[];
  B: number; Sq: number; Hq: number; Dv: number;
}

/** [B, Sq, Hq, D] of a rank-3 ([B, Hq, D], Sq = 1) or rank-4 q. */
function qDims(q: { shape: readonly number[] }): [number, number, number, number] {
  const s = q.shape;
  return s.length === 3 ? [s[0]!, 1, s[1]!, s[2]!] : [s[0]!, s[1]!, s[2]!, s[3]!];
}

const f64 = (shape: number[], data: Float64Array): TensorLike => ({ dtype: 'float32', shape, data });

/**
 * Decode in float64: sequence b is q's row b attending over the first lens[b]
 * keys of its cache sequence (contiguous row b, or through blockTable when
 * paged), with Sk = lens[b] in the causal / window / ALiBi alignment.
 */
function referenceDecode(q: TensorLike, kCache: TensorLike, vCache: TensorLike, lens: ArrayLike<number>,
  opts: RefOptions = {}, blockTable?: Int32Array): DecodeRef {
  const [B, Sq, Hq, D] = qDims(q);
  const [, rows, Hkv] = kCache.shape as [number, number, number, number];
  const Dv = vCache.shape[3]!;
  const qv = readValues(q), kv = readValues(kCache), vv = readValues(vCache);
  const maxPages = blockTable && B > 0 ? blockTable.length / B : 0;
  const out = new Float64Array(B * Sq * Hq * Dv), lse = new Float64Array(B * Hq * Sq), noKey = new Uint8Array(B * Hq * Sq);
  const kRow = Hkv * D, vRow = Hkv * Dv;
  for (let b = 0; b < B; b++) {
    const L = lens[b]!;
    const kb = new Float64Array(L * kRow), vb = new Float64Array(L * vRow);
    for (let j = 0; j < L; j++) {
      let outer = b, row = j;
      if (blockTable) { outer = blockTable[b * maxPages + Math.floor(j / rows)]!; row = j % rows; }
      const at = outer * rows + row;
      kb.set(kv.subarray(at * kRow, (at + 1) * kRow), j * kRow);
      vb.set(vv.subarray(at * vRow, (at + 1) * vRow), j * vRow);
    }
    const r = referenceAttention(f64([1, Sq, Hq, D], qv.subarray(b * Sq * Hq * D, (b + 1) * Sq * Hq * D)),
      f64([1, L, Hkv, D], kb), f64([1, L, Hkv, Dv], vb), opts);
    out.set(r.out, b * Sq * Hq * Dv);
    lse.set(r.lse, b * Hq * Sq);
    noKey.set(r.noKey, b * Hq * Sq);
  }
  const rank3 = q.shape.length === 3;
  return {
    out, lse, noKey, B, Sq, Hq, Dv,
    outShape: rank3 ? [B, Hq, Dv] : [B, Sq, Hq, Dv],
    lseShape: rank3 ? [B, Hq] : [B, Hq, Sq],
  };
}

/**
 * Asserts res is the reference within DESIGN's bounds: shapes, dtypes, every
 * element finite, relative Frobenius error of each sequence and of the whole,
 * rows that see no key exactly 0 with lse −Infinity.
 */
function checkDecode(label: string, res: { out: Tensor; lse?: Tensor }, ref: DecodeRef, dtype: DType): void {
  assert.instance(res.out, Tensor, `${label}: out is a Tensor`);
  assert.equal([...res.out.shape], ref.outShape, `${label}: out.shape`);
  assert.is(res.out.dtype, dtype, `${label}: out.dtype`);
  const got = readValues(res.out);
  for (let i = 0; i < got.length; i++) {
    if (!Number.isFinite(got[i]!)) assert.unreachable(`${label}: out[${i}] = ${got[i]} (not written, or read a NaN cache row)`);
  }
  const { B, Sq, Hq, Dv } = ref;
  const per = Sq * Hq * Dv;
  for (let b = 0; b < B; b++) {
    const err = relFrobenius(got.subarray(b * per, (b + 1) * per), ref.out.subarray(b * per, (b + 1) * per));
    if (!(err < OUT_TOL[dtype])) assert.unreachable(`${label}: sequence ${b}: relative Frobenius error ${err.toExponential(3)} ≥ ${OUT_TOL[dtype]} (${dtype})`);
  }
  const err = relFrobenius(got, ref.out);
  assert.ok(err < OUT_TOL[dtype], `${label}: relative Frobenius error ${err.toExponential(3)} ≥ ${OUT_TOL[dtype]}`);
  checkNoKeyRows(label, got, ref.noKey, [B, Sq, Hq, Dv]);
  if (res.lse !== undefined) checkLse(label, res.lse, ref.lse, ref.lseShape, dtype);
}

// ---------------------------------------------------------------------------
// Random caches.

interface Case {
  q: Tensor; k: Tensor; v: Tensor; lens: Int32Array;
  blockTable?: Int32Array;
}

interface Shape {
  lens: number[]; cap?: number; Hq: number; Hkv?: number; D: number; Dv?: number;
  /** rank-4 q with Sq tokens; omitted: rank-3 q (one token). */
  Sq?: number;
  dtype?: DType;
}

const NAN_BITS: Record<DType, number> = { float32: NaN, float16: 0x7e00, bfloat16: 0x7fc0 };

/** Sets every row at or past lens[b] of a contiguous [B, cap, H, D] cache to NaN: those must never be read. */
function poisonPastLengths(t: Tensor, lens: ArrayLike<number>): void {
  const [B, cap, H, D] = t.shape as [number, number, number, number];
  for (let b = 0; b < B; b++) t.data.fill(NAN_BITS[t.dtype], (b * cap + lens[b]!) * H * D, (b + 1) * cap * H * D);
}

function makeCase(seed: number, s: Shape): Case {
  const r = rng(seed);
  const { lens, Hq, D, dtype = 'float32' } = s;
  const Hkv = s.Hkv ?? Hq, Dv = s.Dv ?? D, B = lens.length;
  const cap = s.cap ?? Math.max(1, ...lens) + 3;
  const q = randomTensor(r, s.Sq === undefined ? [B, Hq, D] : [B, s.Sq, Hq, D], dtype);
  const k = randomTensor(r, [B, cap, Hkv, D], dtype), v = randomTensor(r, [B, cap, Hkv, Dv], dtype);
  poisonPastLengths(k, lens);
  poisonPastLengths(v, lens);
  return { q, k, v, lens: Int32Array.from(lens) };
}

/** Shuffles 0 .. n − 1 (Fisher–Yates, seeded). */
function permutation(r: () => number, n: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [p[i], p[j]] = [p[j]!, p[i]!]; }
  return p;
}

/**
 * The same logical cache, paged: pages of `pageSize` rows in a random order
 * (plus `extraPages` unused ones), every unused row NaN, block-table entries
 * past each sequence's length garbage (999999, −1, 2^31 − 1) that must not be read.
 */
function toPaged(seed: number, c: Case, pageSize: number, extraPages = 3, extraTableCols = 1): Case {
  const r = rng(seed);
  const [B, cap, Hkv, D] = c.k.shape as [number, number, number, number];
  const Dv = c.v.shape[3]!, dtype = c.k.dtype;
  const maxPages = Math.ceil(cap / pageSize) + extraTableCols;
  const need = [...c.lens].map((l) => Math.ceil(l / pageSize));
  const numPages = need.reduce((a, b) => a + b, 0) + extraPages;
  const perm = permutation(r, numPages);
  const kP = nanData(numPages * pageSize * Hkv * D, dtype), vP = nanData(numPages * pageSize * Hkv * Dv, dtype);
  const garbage = [999999, -1, 2 ** 31 - 1, numPages, 999999];
  const bt = Int32Array.from({ length: B * maxPages }, (_, i) => garbage[i % garbage.length]!);
  let next = 0;
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < need[b]!; i++) {
      const page = perm[next++]!;
      bt[b * maxPages + i] = page;
      for (let j = i * pageSize; j < Math.min(c.lens[b]!, (i + 1) * pageSize); j++) {
        const src = b * cap + j, dst = page * pageSize + (j % pageSize);
        kP.set(c.k.data.subarray(src * Hkv * D, (src + 1) * Hkv * D), dst * Hkv * D);
        vP.set(c.v.data.subarray(src * Hkv * Dv, (src + 1) * Hkv * Dv), dst * Hkv * Dv);
      }
    }
  }
  return {
    q: c.q, lens: c.lens, blockTable: bt,
    k: new Tensor(dtype, kP, [numPages, pageSize, Hkv, D]),
    v: new Tensor(dtype, vP, [numPages, pageSize, Hkv, Dv]),
  };
}

/** The same cache as views of one [B, cap, 2, Hkv, D] buffer (K and V interleaved per token), through strides. */
function toStrided(c: Case): Case {
  const [B, cap, Hkv, D] = c.k.shape as [number, number, number, number];
  assert.is(c.v.shape[3], D, 'toStrided needs Dv = D');
  const dtype = c.k.dtype, row = Hkv * D;
  const buf = dtype === 'float32' ? new Float32Array(B * cap * 2 * row) : new Uint16Array(B * cap * 2 * row);
  for (let t = 0; t < B * cap; t++) {
    buf.set(c.k.data.subarray(t * row, (t + 1) * row), (2 * t) * row);
    buf.set(c.v.data.subarray(t * row, (t + 1) * row), (2 * t + 1) * row);
  }
  const strides = [cap * 2 * row, 2 * row, D, 1];
  return {
    q: c.q, lens: c.lens,
    k: new Tensor(dtype, buf, [B, cap, Hkv, D], strides),
    v: new Tensor(dtype, buf.subarray(row), [B, cap, Hkv, D], strides),
  };
}

/** Element offset of (sequence b, key j, head h) in a cache tensor (strides and block table followed). */
function cacheOffset(t: Tensor, b: number, j: number, h: number, blockTable?: Int32Array, B = 0): number {
  const st = t.strides ?? [t.shape[1]! * t.shape[2]! * t.shape[3]!, t.shape[2]! * t.shape[3]!, t.shape[3]!, 1];
  let outer = b, row = j;
  if (blockTable) { const ps = t.shape[1]!; outer = blockTable[b * (blockTable.length / B) + Math.floor(j / ps)]!; row = j % ps; }
  return outer * st[0]! + row * st[1]! + h * st[2]!;
}

// ---------------------------------------------------------------------------
// Calls.

function outShapeOf(c: Case): number[] {
  const [B, Sq, Hq] = qDims(c.q);
  const Dv = c.v.shape[3]!;
  return c.q.shape.length === 3 ? [B, Hq, Dv] : [B, Sq, Hq, Dv];
}

async function runDecode(mode: Mode, c: Case, opts: DecodeAttentionOptions = {}): Promise<AttentionWithLse> {
  const o = { ...opts, returnLse: true as const, ...(c.blockTable ? { blockTable: c.blockTable } : {}) };
  return mode === 'sync' ? decodeAttentionSync(c.q, c.k, c.v, c.lens, o) : decodeAttention(c.q, c.k, c.v, c.lens, o);
}

/** Runs into a NaN-poisoned out (sync and async by default) and checks against the reference. */
async function decodeAndCheck(label: string, c: Case, opts: Opts = {}, modes: readonly Mode[] = ['sync', 'async'],
  ref: DecodeRef = referenceDecode(c.q, c.k, c.v, c.lens, opts, c.blockTable)): Promise<AttentionWithLse[]> {
  const results: AttentionWithLse[] = [];
  for (const mode of modes) {
    const out = nanTensor(outShapeOf(c), c.q.dtype);
    const res = await runDecode(mode, c, { ...opts, out });
    assert.ok(res.out === out, `${label} [${mode}]: resolves to the caller's out`);
    checkDecode(`${label} [${mode}]`, res, ref, c.q.dtype);
    results.push(res);
  }
  return results;
}

function withThreads<T>(n: number, fn: () => Promise<T>): Promise<T> {
  const before = backends().cpu.threads;
  setNumThreads(n);
  return fn().finally(() => setNumThreads(before));
}

function rel(a: Tensor, b: Tensor): number {
  return relFrobenius(readValues(a), readValues(b));
}

// ---------------------------------------------------------------------------
const basic = suite('decode: against the per-sequence float64 reference');

for (const dtype of DTYPES) {
  basic(`${dtype}: ragged lengths 0, 1, 17, 4096, 128, 129, 5; GQA 4/2; D 64; rank-3 q`, async () => {
    const c = makeCase(30000, { lens: [0, 1, 17, 4096, 128, 129, 5], Hq: 4, Hkv: 2, D: 64, dtype });
    await decodeAndCheck(dtype, c);
  });
}

// Every head dim with every group shape (Hq/Hkv 1/1, 4/2, MQA 8/1, 6/3), the dtypes in rotation.
const DIMS = [1, 40, 64, 96, 128, 200];
const HEADS: [number, number][] = [[1, 1], [4, 2], [8, 1], [6, 3]];
DIMS.forEach((D, di) => {
  basic(`D ${D}: Hq/Hkv 1/1, 4/2, 8/1, 6/3; lengths 0, 1, 17, 259`, async () => {
    for (const [hi, [Hq, Hkv]] of HEADS.entries()) {
      const dtype = DTYPES[(di + hi) % 3]!;
      const c = makeCase(30100 + 10 * di + hi, { lens: [17, 0, 259, 1], Hq, Hkv, D, dtype });
      await decodeAndCheck(`D ${D} Hq/Hkv ${Hq}/${Hkv} ${dtype}`, c, {}, ['sync']);
    }
  });
});

basic('Dv ≠ D (MLA-style): D 64 / Dv 40 and D 40 / Dv 200', async () => {
  await decodeAndCheck('64/40', makeCase(30200, { lens: [300, 0, 7], Hq: 4, Hkv: 2, D: 64, Dv: 40 }));
  await decodeAndCheck('40/200 bf16', makeCase(30201, { lens: [5, 140], Hq: 2, Hkv: 1, D: 40, Dv: 200, dtype: 'bfloat16', Sq: 2 }), { causal: true });
});

// Zero-mean v over 100000 keys: the output is ~1/√n of its summands (|out| ≈ 2e-3 against
// |v| ≈ 0.55), the ill-conditioned case for float32 accumulation (an early build drifted to
// 1.2–3.1e-5 here, past DESIGN's 1e-5).
basic('one 100000-token sequence beside short ones (Hq 2, Hkv 1, D 16), every strategy', async () => {
  const c = makeCase(30300, { lens: [100000, 3, 0], cap: 100000, Hq: 2, Hkv: 1, D: 16 });
  const ref = referenceDecode(c.q, c.k, c.v, c.lens);
  for (const strategy of STRATEGIES) await decodeAndCheck(`100000 ${strategy}`, c, { strategy }, ['sync'], ref);
  await decodeAndCheck('100000 async', c, {}, ['async'], ref);
  // a few new tokens, causal, over the long sequence
  const c4 = makeCase(30301, { lens: [100000, 4], cap: 100000, Hq: 2, Hkv: 1, D: 16, Sq: 5, dtype: 'bfloat16' });
  await decodeAndCheck('100000 Sq 5 causal bf16', c4, { causal: true, strategy: 'lean' }, ['sync']);
});

// Sq: 1 as rank 3, 1 as rank 4, 3 and 5; causal (bottom-right: new token i sees keys ≤ i + L − Sq) and not.
for (const [name, Sq] of [['rank-3 (Sq 1)', undefined], ['rank-4 Sq 1', 1], ['Sq 3', 3], ['Sq 5', 5]] as [string, number | undefined][]) {
  for (const causal of [false, true]) {
    basic(`${name}${causal ? ', causal' : ''}: lengths incl. 0, 1, 2 (< Sq: early rows see no key under causal), 130, 600`, async () => {
      const c = makeCase(30400 + (Sq ?? 0) * 2 + (causal ? 1 : 0), { lens: [0, 1, 2, 130, 600, 17], Hq: 6, Hkv: 2, D: 40, ...(Sq !== undefined ? { Sq } : {}) });
      const ref = referenceDecode(c.q, c.k, c.v, c.lens, { causal });
      if (causal && (Sq ?? 1) > 2) assert.ok(ref.noKey.some((x, i) => x === 1 && Math.floor(i / (6 * (Sq ?? 1))) >= 1), 'setup: rows with no key in a non-empty sequence');
      await decodeAndCheck(name, c, { causal }, ['sync', 'async'], ref);
    });
  }
}

basic('rank-4 q with Sq 0: empty out [B, 0, Hq, Dv] and lse [B, Hq, 0]', async () => {
  const c = makeCase(30500, { lens: [3, 9], Hq: 2, D: 8, Sq: 0 });
  for (const mode of ['sync', 'async'] as const) {
    const res = await runDecode(mode, c);
    assert.equal([...res.out.shape], [2, 0, 2, 8]);
    assert.equal([...res.lse.shape], [2, 2, 0]);
  }
});

basic('B = 0: contiguous and paged (empty block table)', async () => {
  const q = randomTensor(rng(30501), [0, 4, 16]);
  const k = randomTensor(rng(30502), [0, 8, 2, 16]);
  const res = decodeAttentionSync(q, k, k, new Int32Array(0), { returnLse: true });
  assert.equal([...res.out.shape], [0, 4, 16]);
  assert.equal([...res.lse.shape], [0, 4]);
  const pages = randomTensor(rng(30503), [3, 8, 2, 16]);
  const pr = await decodeAttention(q, pages, pages, new Int32Array(0), { blockTable: new Int32Array(0), returnLse: true });
  assert.equal([...pr.out.shape], [0, 4, 16]);
});

// The CPU kernel sizes key tiles so one tile's K and V of every kv head fit 512 KiB: with
// Hkv·(D + Dv)·4 bytes per key, 128 keys up to 4 KiB per key, then 64, 32, and 16 at least.
for (const [tile, Hkv, D, lens] of [
  [64, 4, 160, [0, 1, 63, 64, 65, 200]],
  [32, 8, 200, [1, 31, 32, 33, 97]],
  [16, 16, 256, [1, 15, 16, 17, 250]],
] as [number, number, number, number[]][]) {
  basic(`wide caches (${tile}-key tiles: Hkv ${Hkv}, D ${D}): lengths around the tile size, Sq 2 causal, every strategy at 7 threads`, async () => {
    const c = makeCase(30700 + tile, { lens, Hq: Hkv * 2, Hkv, D, Sq: 2 });
    const ref = referenceDecode(c.q, c.k, c.v, c.lens, { causal: true });
    await withThreads(7, async () => {
      for (const strategy of STRATEGIES) await decodeAndCheck(`tile ${tile} ${strategy}`, c, { causal: true, strategy }, ['sync'], ref);
    });
    await decodeAndCheck(`tile ${tile} paged 5`, toPaged(30750 + tile, c, 5), { causal: true }, ['async']);
  });
}

basic('many query rows per sequence (Hq 48 / Hkv 2 × Sq 5 = 240 rows, 120 per kv head), causal', async () => {
  const c = makeCase(30600, { lens: [200, 3, 1000], Hq: 48, Hkv: 2, D: 32, Sq: 5 });
  await decodeAndCheck('120 rows per unit', c, { causal: true }, ['sync']);
  await decodeAndCheck('120 rows per unit, window', c, { causal: true, window: [70, 0], strategy: 'split' }, ['async']);
});
basic.run();

// ---------------------------------------------------------------------------
const options = suite('decode: score options, Sk = cacheSeqlens[b] in every alignment');

const OPT_SHAPE: Shape = { lens: [0, 1, 17, 300, 1000, 129], Hq: 4, Hkv: 2, D: 40, Sq: 3 };
const OPTS: [string, Opts][] = [
  ['scale 0.3', { scale: 0.3 }],
  ['window [5, 0]', { window: [5, 0] }],
  ['window [150, 0]: a key range starting mid-cache (tile span not at 0)', { window: [150, 0] }],
  ['window [0, 0]: one key per row, rows split across a tile boundary', { window: [0, 0] }],
  ['window [−1, 2] (non-causal, right bound only)', { window: [-1, 2] }],
  ['window [3, 7]', { window: [3, 7] }],
  ['causal + window [100, −1]', { causal: true, window: [100, -1] }],
  ['softcap 2 with scale 3', { softcap: 2, scale: 3 }],
  ['alibiSlopes', { alibiSlopes: alibi(4) }],
  ['causal + alibiSlopes + softcap', { causal: true, alibiSlopes: alibi(4, 2), softcap: 5 }],
  ['everything', { causal: true, scale: 0.4, window: [11, 2], softcap: 5, alibiSlopes: alibi(4, 2) }],
];
OPTS.forEach(([name, opts], idx) => {
  options(name, async () => {
    const c = makeCase(31000 + idx, OPT_SHAPE);
    await decodeAndCheck(name, c, opts);
  });
});

for (const dtype of ['float16', 'bfloat16'] as const) {
  options(`${dtype}: causal + window + softcap + alibi, rank 3 and rank 4`, async () => {
    await decodeAndCheck(`${dtype} rank 3`, makeCase(31100, { lens: [700, 0, 33], Hq: 8, Hkv: 1, D: 96, dtype }),
      { window: [200, -1], softcap: 6, alibiSlopes: alibi(8) }, ['sync']);
    await decodeAndCheck(`${dtype} rank 4`, makeCase(31101, { lens: [700, 2, 33], Hq: 6, Hkv: 3, D: 72, Sq: 4, dtype }),
      { causal: true, window: [300, 0], softcap: 6, alibiSlopes: alibi(6) }, ['async']);
  });
}

options('rank-3 q: lse is [B, Hq]; rank 4: [B, Hq, Sq]; a sequence with no key gets out 0 and lse −Infinity', async () => {
  const c3 = makeCase(31200, { lens: [0, 4], Hq: 3, D: 8 });
  const r3 = decodeAttentionSync(c3.q, c3.k, c3.v, c3.lens, { returnLse: true });
  assert.equal([...r3.lse.shape], [2, 3]);
  for (let h = 0; h < 3; h++) assert.is((r3.lse.data as Float32Array)[h], -Infinity, `lse[0, ${h}]`);
  assert.ok((r3.out.data as Float32Array).subarray(0, 3 * 8).every((x) => x === 0), 'empty sequence: out 0');
  const c4 = makeCase(31201, { lens: [0, 4], Hq: 3, D: 8, Sq: 2 });
  const r4 = await decodeAttention(c4.q, c4.k, c4.v, c4.lens, { returnLse: true });
  assert.equal([...r4.lse.shape], [2, 3, 2]);
  // without returnLse: the plain Tensor
  const plain = decodeAttentionSync(c3.q, c3.k, c3.v, c3.lens);
  assert.instance(plain, Tensor);
  assert.ok(bitwiseEqual(plain.data, r3.out.data), 'returnLse does not change out');
});
options('a rank-3 q and the same q as rank 4 with Sq 1 give the same out and lse values', async () => {
  const c = makeCase(31300, { lens: [0, 1, 300, 4096], Hq: 8, Hkv: 2, D: 64 });
  const q4 = new Tensor('float32', c.q.data, [4, 1, 8, 64]);
  for (const opts of [{}, { causal: true, window: [100, 0] as [number, number], softcap: 5 }]) {
    const r3 = decodeAttentionSync(c.q, c.k, c.v, c.lens, { ...opts, returnLse: true });
    const r4 = await decodeAttention(q4, c.k, c.v, c.lens, { ...opts, returnLse: true });
    assert.equal([...r4.out.shape], [4, 1, 8, 64]);
    assert.equal([...r4.lse.shape], [4, 8, 1]);
    assert.ok(bitwiseEqual(r3.out.data, r4.out.data) && bitwiseEqual(r3.lse.data, r4.lse.data), `rank 3 == rank 4 Sq 1 (${JSON.stringify(opts)})`);
  }
});
options.run();

// ---------------------------------------------------------------------------
const strat = suite('decode: strategies agree, are deterministic, at several thread counts');

// Enough tiles (several thousand keys) that every strategy cuts units among workers.
const STRAT_SHAPE: Shape = { lens: [0, 1, 17, 700, 4096, 2500, 130, 129], Hq: 8, Hkv: 2, D: 64, Sq: 3 };

// 'split' cuts a unit only when workers exceed the units (8 sequences here): hence 20 threads.
for (const threads of [1, 2, 7, 20]) {
  strat(`threads ${threads}: lean, split, single, auto each vs the reference, bitwise over 3 runs, within float32 rounding of each other`, async () => {
    await withThreads(threads, async () => {
      const c = makeCase(32000, STRAT_SHAPE);
      const opts: Opts = { causal: true };
      const ref = referenceDecode(c.q, c.k, c.v, c.lens, opts);
      const first: Record<string, AttentionWithLse> = {};
      for (const strategy of STRATEGIES) {
        const runs: AttentionWithLse[] = [];
        for (let i = 0; i < 3; i++) runs.push(await runDecode(i === 1 ? 'async' : 'sync', c, { ...opts, strategy }));
        checkDecode(`${strategy} threads ${threads}`, runs[0]!, ref, 'float32');
        for (let i = 1; i < 3; i++) {
          assert.ok(bitwiseEqual(runs[0]!.out.data, runs[i]!.out.data), `${strategy} threads ${threads}: out run 0 == run ${i} bitwise`);
          assert.ok(bitwiseEqual(runs[0]!.lse.data, runs[i]!.lse.data), `${strategy} threads ${threads}: lse run 0 == run ${i} bitwise`);
        }
        first[strategy] = runs[0]!;
      }
      for (const s of STRATEGIES) {
        const e = rel(first[s]!.out, first.single!.out);
        assert.ok(e < 1e-6, `threads ${threads}: ${s} vs single differ by ${e.toExponential(3)}`);
        const l = compareLse(readValues(first[s]!.lse), readValues(first.single!.lse), 1e-6);
        assert.ok(l.ok, `threads ${threads}: ${s} vs single lse: ${l.message}`);
      }
    });
  });
}

strat('threads 7: a unit cut where some of its rows see nothing in a piece (causal, Sq 5) merges exactly', async () => {
  await withThreads(7, async () => {
    // A CPU unit is a sequence here (Hkv 1); tiles hold 128 keys (Hkv·(D + Dv)·4 B·128 fits 512 KiB).
    // lengths 384, 130, 3712 → 3, 2, 29 key tiles (total 34 → 7 workers at ≥ 4 tiles each).
    // Under causal with Sq 5, the 130-key sequence's rows 0–2 see keys ≤ 125..127 (tile 0 only),
    // rows 3–4 see tile 1 too; lean (cuts at global tiles 4, 9, ...) and split (⌈7/3⌉ = 3 splits)
    // both cut that unit into [0, 1) and [1, 2), so rows 0–2 see nothing in the second piece.
    const plans = { lean: native.planDecode([3, 2, 29], 'lean', 7), split: native.planDecode([3, 2, 29], 'split', 7) };
    for (const [s, p] of Object.entries(plans)) {
      assert.ok(p.pieces.some(([u, b, e]) => u === 1 && b === 1 && e === 2), `setup: ${s} cuts unit 1 at tile 1: ${JSON.stringify(p.pieces)}`);
    }
    const c = makeCase(32100, { lens: [384, 130, 3712], Hq: 4, Hkv: 1, D: 48, Sq: 5 });
    const ref = referenceDecode(c.q, c.k, c.v, c.lens, { causal: true });
    for (const strategy of STRATEGIES) await decodeAndCheck(`causal ${strategy}`, c, { causal: true, strategy }, ['sync'], ref);
    // windows: rows whose visible keys lie in different tiles (a row's range may miss a piece entirely)
    for (const window of [[0, 0], [129, 0], [300, 2]] as [number, number][]) {
      const wref = referenceDecode(c.q, c.k, c.v, c.lens, { window });
      for (const strategy of STRATEGIES) await decodeAndCheck(`window [${window}] ${strategy}`, c, { window, strategy }, ['sync'], wref);
    }
  });
});

for (const dtype of ['float16', 'bfloat16'] as const) {
  strat(`${dtype}: every strategy vs the reference at 7 threads, deterministic`, async () => {
    await withThreads(7, async () => {
      const c = makeCase(32200, { ...STRAT_SHAPE, dtype });
      const ref = referenceDecode(c.q, c.k, c.v, c.lens, { causal: true });
      for (const strategy of STRATEGIES) {
        const [a, b] = await decodeAndCheck(`${dtype} ${strategy}`, c, { causal: true, strategy }, ['sync', 'async'], ref);
        assert.ok(bitwiseEqual(a!.out.data, b!.out.data), `${dtype} ${strategy}: sync == async bitwise`);
      }
    });
  });
}

strat('setNumThreads(1) vs the default: both correct, within float32 rounding', async () => {
  const c = makeCase(32300, STRAT_SHAPE);
  const ref = referenceDecode(c.q, c.k, c.v, c.lens);
  const [dflt] = await decodeAndCheck('default threads', c, {}, ['async'], ref);
  const [one] = await withThreads(1, () => decodeAndCheck('1 thread', c, {}, ['async'], ref));
  const e = rel(dflt!.out, one!.out);
  assert.ok(e < 1e-6, `1 thread vs default: ${e.toExponential(3)}`);
});
strat.run();

// ---------------------------------------------------------------------------
const paged = suite('decode: paged caches (block table), strided caches');

for (const pageSize of [16, 7, 128]) {
  paged(`pageSize ${pageSize}: random page permutation, garbage past each length; == contiguous within rounding, vs reference`, async () => {
    const c = makeCase(33000 + pageSize, { lens: [0, 1, 17, 300, 1000, 128, 129], Hq: 4, Hkv: 2, D: 64, Sq: 2 });
    const p = toPaged(33100 + pageSize, c, pageSize);
    for (const strategy of STRATEGIES) {
      for (const causal of [false, true]) {
        const opts: Opts = { causal, strategy };
        const ref = referenceDecode(p.q, p.k, p.v, p.lens, opts, p.blockTable);
        const [pr] = await decodeAndCheck(`paged ${pageSize} ${strategy} causal=${causal}`, p, opts, strategy === 'lean' ? ['sync', 'async'] : ['sync'], ref);
        const cr = await runDecode('sync', c, opts);
        checkDecode(`contiguous ${strategy} causal=${causal}`, cr, ref, 'float32');
        const e = rel(pr!.out, cr.out);
        assert.ok(e < 1e-6, `paged ${pageSize} vs contiguous (${strategy}, causal=${causal}): ${e.toExponential(3)}`);
      }
    }
  });
}

for (const dtype of ['float16', 'bfloat16'] as const) {
  paged(`${dtype} paged (pageSize 16 and 7): window, alibi; == contiguous within ${dtype} rounding`, async () => {
    const c = makeCase(33200, { lens: [513, 0, 40, 1], Hq: 6, Hkv: 3, D: 40, dtype });
    const opts: Opts = { window: [200, -1], alibiSlopes: alibi(6) };
    const cr = await runDecode('sync', c, opts);
    for (const ps of [16, 7]) {
      const p = toPaged(33201 + ps, c, ps);
      const [pr] = await decodeAndCheck(`${dtype} paged ${ps}`, p, opts);
      const e = rel(pr!.out, cr.out);
      assert.ok(e < OUT_TOL[dtype], `${dtype} paged ${ps} vs contiguous: ${e.toExponential(3)}`);
    }
  });
}

paged('a length that fills its last page exactly: the next block-table entry is garbage and not read', async () => {
  const c = makeCase(33300, { lens: [32, 16, 48], cap: 48, Hq: 2, D: 16 });
  const p = toPaged(33301, c, 16, 0, 0);
  // sequence 1 needs one page; its entries 1 and 2 are garbage (out of range)
  for (const i of [1, 2]) {
    const e = p.blockTable![1 * 3 + i]!;
    assert.ok(e < 0 || e >= p.k.shape[0]!, `setup: entry [1, ${i}] = ${e} is not a page`);
  }
  await decodeAndCheck('exact pages', p, {});
  // and lengths equal to maxPages × pageSize are accepted
  const full = toPaged(33302, makeCase(33303, { lens: [48, 48], cap: 48, Hq: 2, D: 16 }), 16, 0, 0);
  await decodeAndCheck('lengths at maxPages × pageSize', full, { causal: true });
});

paged('strided caches: k and v as views of one [B, cap, 2, Hkv, D] buffer; == contiguous bitwise-or-rounding, vs reference', async () => {
  for (const dtype of DTYPES) {
    const c = makeCase(33400, { lens: [300, 0, 1, 129], Hq: 4, Hkv: 2, D: 40, Sq: 3, dtype });
    const s = toStrided(c);
    assert.ok(s.k.strides && s.v.strides, 'setup: strided views');
    const [sr] = await decodeAndCheck(`strided ${dtype}`, s, { causal: true });
    const cr = await runDecode('sync', c, { causal: true });
    const e = rel(sr!.out, cr.out);
    assert.ok(e < (dtype === 'float32' ? 1e-6 : OUT_TOL[dtype]), `${dtype} strided vs contiguous: ${e.toExponential(3)}`);
  }
});

paged('a strided q (slice of a [B, Sq, 3, Hq, D] projection) and a strided paged cache', async () => {
  const B = 3, Sq = 2, Hq = 4, D = 32;
  const qkv = randomTensor(rng(33500), [B, Sq, 3, Hq, D]);
  const q = new Tensor('float32', qkv.data, [B, Sq, Hq, D], [Sq * 3 * Hq * D, 3 * Hq * D, D, 1]);
  const c = makeCase(33501, { lens: [100, 2, 0], Hq, Hkv: 2, D, Sq });
  await decodeAndCheck('strided q', { ...c, q }, { causal: true });
  // pages stored as views: every page of a [numPages, pageSize, 2, Hkv, D] buffer
  const p = toPaged(33502, c, 8);
  const st = toStrided({ ...p, lens: new Int32Array(p.k.shape[0]!) });  // rows copied as is, lengths irrelevant here
  await decodeAndCheck('strided paged', { ...p, q, k: st.k, v: st.v }, { causal: true });
});
paged.run();

// ---------------------------------------------------------------------------
const fused = suite('decode: fused append of kNew / vNew');

/**
 * Runs decodeAttention with kNew/vNew over a cache whose new rows hold NaN, then
 * checks (1) the cache: exactly the new rows changed, to kNew/vNew's bits; (2) the
 * result against the reference on the updated cache.
 */
async function checkFusedAppend(label: string, c: Case, Sq: number, mode: Mode, opts: Opts = {}, seed = 1): Promise<void> {
  const [B, , , D] = qDims(c.q);
  const Hkv = c.k.shape[2]!, Dv = c.v.shape[3]!, dtype = c.q.dtype;
  const r = rng(seed);
  const kNew = randomTensor(r, [B, Sq, Hkv, D], dtype), vNew = randomTensor(r, [B, Sq, Hkv, Dv], dtype);
  // the rows to be written hold NaN now (as a fresh cache's garbage would)
  for (let b = 0; b < B; b++) for (let t = 0; t < Sq; t++) for (let h = 0; h < Hkv; h++) {
    const j = c.lens[b]! - Sq + t;
    c.k.data.fill(NAN_BITS[dtype], cacheOffset(c.k, b, j, h, c.blockTable, B), cacheOffset(c.k, b, j, h, c.blockTable, B) + D);
    c.v.data.fill(NAN_BITS[dtype], cacheOffset(c.v, b, j, h, c.blockTable, B), cacheOffset(c.v, b, j, h, c.blockTable, B) + Dv);
  }
  // K and V may be views of one buffer (a strided cache): then the expected copies share one buffer too
  const wantK = c.k.data.slice();
  const shared = c.v.data.buffer === c.k.data.buffer;
  const vOff = c.v.data.byteOffset - c.k.data.byteOffset;
  const wantV = !shared ? c.v.data.slice()
    : c.v.data instanceof Float32Array ? new Float32Array(wantK.buffer, vOff, c.v.data.length) : new Uint16Array(wantK.buffer, vOff, c.v.data.length);
  for (let b = 0; b < B; b++) for (let t = 0; t < Sq; t++) for (let h = 0; h < Hkv; h++) {
    const j = c.lens[b]! - Sq + t;
    wantK.set(kNew.data.subarray(((b * Sq + t) * Hkv + h) * D, ((b * Sq + t) * Hkv + h + 1) * D), cacheOffset(c.k, b, j, h, c.blockTable, B));
    wantV.set(vNew.data.subarray(((b * Sq + t) * Hkv + h) * Dv, ((b * Sq + t) * Hkv + h + 1) * Dv), cacheOffset(c.v, b, j, h, c.blockTable, B));
  }
  const ref = referenceDecode(c.q, { dtype, shape: c.k.shape, data: wantK, strides: c.k.strides },
    { dtype, shape: c.v.shape, data: wantV, strides: c.v.strides }, c.lens, opts, c.blockTable);
  const out = nanTensor(outShapeOf(c), dtype);
  const res = await runDecode(mode, c, { ...opts, kNew, vNew, out });
  assert.ok(bitwiseEqual(c.k.data, wantK), `${label}: kCache holds kNew at rows cacheSeqlens[b] − Sq .., nothing else changed`);
  assert.ok(bitwiseEqual(c.v.data, wantV), `${label}: vCache holds vNew at rows cacheSeqlens[b] − Sq .., nothing else changed`);
  checkDecode(label, res, ref, dtype);
}

for (const mode of ['sync', 'async'] as const) {
  fused(`${mode}: contiguous, rank-3 q (one new token), lengths 1, 17, 300`, async () => {
    await checkFusedAppend('contiguous rank 3', makeCase(34000, { lens: [1, 17, 300], Hq: 4, Hkv: 2, D: 64 }), 1, mode, {}, 34001);
  });
  fused(`${mode}: contiguous, Sq 3 causal (speculative tokens), lengths 3, 4, 500`, async () => {
    await checkFusedAppend('contiguous Sq 3', makeCase(34010, { lens: [3, 4, 500], Hq: 6, Hkv: 3, D: 40, Sq: 3 }), 3, mode, { causal: true }, 34011);
  });
  fused(`${mode}: paged (pageSize 7), Sq 5 causal, new rows crossing page boundaries`, async () => {
    const c = makeCase(34020, { lens: [5, 12, 130, 71], Hq: 4, Hkv: 1, D: 32, Sq: 5 });
    await checkFusedAppend('paged 7 Sq 5', toPaged(34021, c, 7), 5, mode, { causal: true }, 34022);
  });
}

fused('strided cache (views of one [B, cap, 2, Hkv, D] buffer) and 16-bit dtypes', async () => {
  await checkFusedAppend('strided', toStrided(makeCase(34030, { lens: [2, 90], Hq: 4, Hkv: 2, D: 24, Sq: 2 })), 2, 'sync', { causal: true }, 34031);
  await checkFusedAppend('float16 paged 16', toPaged(34032, makeCase(34033, { lens: [40, 1], Hq: 2, D: 64, dtype: 'float16' }), 16), 1, 'async', {}, 34034);
  await checkFusedAppend('bfloat16', makeCase(34035, { lens: [33, 3], Hq: 8, Hkv: 2, D: 128, Sq: 3, dtype: 'bfloat16' }), 3, 'sync', { causal: true, strategy: 'split' }, 34036);
});

fused('strided kNew / vNew (slices of one [B, Sq, 2, Hkv, D] projection)', async () => {
  const B = 2, Sq = 2, Hkv = 2, D = 16;
  const c = makeCase(34040, { lens: [10, 2], Hq: 4, Hkv, D, Sq });
  const kv = randomTensor(rng(34041), [B, Sq, 2, Hkv, D]);
  const st = [Sq * 2 * Hkv * D, 2 * Hkv * D, D, 1];
  const kNew = new Tensor('float32', kv.data, [B, Sq, Hkv, D], st);
  const vNew = new Tensor('float32', kv.data.subarray(Hkv * D), [B, Sq, Hkv, D], st);
  const res = decodeAttentionSync(c.q, c.k, c.v, c.lens, { kNew, vNew, causal: true, returnLse: true });
  const kd = c.k.data as Float32Array, kvd = kv.data as Float32Array;
  for (let b = 0; b < B; b++) for (let t = 0; t < Sq; t++) for (let h = 0; h < Hkv; h++) {
    const at = cacheOffset(c.k, b, c.lens[b]! - Sq + t, h);
    const src = ((b * Sq + t) * 2 * Hkv + h) * D;
    assert.ok(bitwiseEqual(kd.subarray(at, at + D), kvd.subarray(src, src + D)), `k row (${b}, ${t}, ${h})`);
  }
  checkDecode('strided kNew', res, referenceDecode(c.q, c.k, c.v, c.lens, { causal: true }), 'float32');
});
fused.run();

// ---------------------------------------------------------------------------
const calls = suite('decode: sync / async, abort, inputs copied, out');

calls('sync and async agree bitwise (contiguous and paged)', async () => {
  const c = makeCase(35000, { lens: [900, 0, 33, 4096], Hq: 8, Hkv: 2, D: 64, Sq: 2 });
  for (const cc of [c, toPaged(35001, c, 16)]) {
    const s = await runDecode('sync', cc, { causal: true });
    const a = await runDecode('async', cc, { causal: true });
    assert.ok(bitwiseEqual(s.out.data, a.out.data) && bitwiseEqual(s.lse.data, a.lse.data), `${cc.blockTable ? 'paged' : 'contiguous'}: sync == async`);
  }
});

calls('an AbortSignal already aborted: async rejects with AbortError, sync throws it; nothing is appended', async () => {
  const c = makeCase(35100, { lens: [40, 5], Hq: 2, D: 16, Sq: 1 });
  const kNew = randomTensor(rng(35101), [2, 1, 2, 16]), vNew = randomTensor(rng(35102), [2, 1, 2, 16]);
  const before = c.k.data.slice();
  const pre = await catchAsync(() => decodeAttention(c.q, c.k, c.v, c.lens, { signal: AbortSignal.abort(), kNew, vNew }), 'pre-aborted');
  assert.is((pre as Error).name, 'AbortError', describe(pre));
  const sync = catchSync(() => decodeAttentionSync(c.q, c.k, c.v, c.lens, { signal: AbortSignal.abort() }));
  assert.is((sync as Error).name, 'AbortError', describe(sync));
  assert.ok(bitwiseEqual(c.k.data, before), 'the cache is untouched');
});

calls('an abort mid-flight rejects with AbortError (or the call finished first)', async () => {
  // 2 × 50000 keys × 4 heads × 64: 100 MB of K and V to stream (constant values: no random generation)
  const B = 2, cap = 50000, H = 4, D = 64;
  const k = new Tensor('float32', new Float32Array(B * cap * H * D).fill(0.25), [B, cap, H, D]);
  const v = new Tensor('float32', new Float32Array(B * cap * H * D).fill(-0.5), [B, cap, H, D]);
  const q = randomTensor(rng(35200), [B, 8, D]);
  const ac = new AbortController();
  const p = decodeAttention(q, k, v, Int32Array.from([cap, cap]), { signal: ac.signal, strategy: 'single' });
  setTimeout(() => ac.abort(), 1);
  const res = await p.then((x) => x, (e: unknown) => e);
  if (!(res instanceof Tensor)) assert.is((res as Error).name, 'AbortError', describe(res));
  else assert.ok((res.data as Float32Array).every((x) => Math.abs(x + 0.5) < 1e-6), 'finished first: every row is the mean of v');
});

calls('cacheSeqlens and blockTable mutated after an async call started do not change it (the binding copies them)', async () => {
  const c = toPaged(35300, makeCase(35301, { lens: [700, 300], Hq: 4, Hkv: 2, D: 64 }), 16);
  const ref = referenceDecode(c.q, c.k, c.v, c.lens, {}, c.blockTable);
  const lens = c.lens.slice(), bt = c.blockTable!.slice();
  const p = decodeAttention(c.q, c.k, c.v, lens, { blockTable: bt, returnLse: true });
  lens.fill(2 ** 30); bt.fill(-5);
  checkDecode('mutated after start', await p, ref, 'float32');
});

calls('cacheSeqlens and blockTable as views with a byte offset (subarray) are read from their offset', async () => {
  const c = toPaged(35500, makeCase(35501, { lens: [50, 3, 20], Hq: 2, D: 16 }), 8);
  const ref = referenceDecode(c.q, c.k, c.v, c.lens, {}, c.blockTable);
  const lens = Int32Array.from([1 << 30, ...c.lens, -1]).subarray(1, 4);
  const bt = Int32Array.from([-9, -9, -9, ...c.blockTable!]).subarray(3);
  checkDecode('subarrays sync', decodeAttentionSync(c.q, c.k, c.v, lens, { blockTable: bt, returnLse: true }), ref, 'float32');
  checkDecode('subarrays async', await decodeAttention(c.q, c.k, c.v, lens, { blockTable: bt, returnLse: true }), ref, 'float32');
});

calls('an async call keeps q, caches, kNew / vNew, alibiSlopes and out alive until it settles (gc mid-flight)', async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  const c = makeCase(35600, { lens: [3000, 2000], Hq: 4, Hkv: 2, D: 64, Sq: 2 });
  const nt = { kNew: randomTensor(rng(35601), [2, 2, 2, 64]), vNew: randomTensor(rng(35602), [2, 2, 2, 64]) };
  const opts: Opts = { causal: true, alibiSlopes: alibi(4) };
  // the expected result, from copies
  const copy = (t: Tensor) => new Tensor(t.dtype, t.data.slice(), t.shape);
  const want = decodeAttentionSync(c.q, copy(c.k), copy(c.v), c.lens, { ...opts, ...nt, returnLse: true });
  const start = () => {
    // every input reachable only from this scope and the call
    const q = copy(c.q), k = copy(c.k), v = copy(c.v);
    return decodeAttention(q, k, v, c.lens.slice(), { ...opts, alibiSlopes: alibi(4), kNew: copy(nt.kNew), vNew: copy(nt.vNew), out: nanTensor([2, 2, 4, 64]), returnLse: true });
  };
  const p = start();
  for (let i = 0; i < 3; i++) { gc?.(); await new Promise((r) => setImmediate(r)); }
  const got = await p;
  assert.ok(bitwiseEqual(got.out.data, want.out.data) && bitwiseEqual(got.lse.data, want.lse.data), 'same result as the sync call');
});

calls('opts undefined and null mean no options', async () => {
  const c = makeCase(35400, { lens: [5, 9], Hq: 2, D: 8 });
  const ref = referenceDecode(c.q, c.k, c.v, c.lens);
  checkDecode('undefined', { out: decodeAttentionSync(c.q, c.k, c.v, c.lens) }, ref, 'float32');
  checkDecode('null', { out: await decodeAttention(c.q, c.k, c.v, c.lens, null as unknown as undefined) }, ref, 'float32');
});
calls.run();

// ---------------------------------------------------------------------------
const errs = suite('decode: malformed calls → FmhaError with the right code; async rejects; nothing written');

// Base: B 2, Hq 4, Hkv 2, D 8, capacity 10, lengths [3, 5]; rank-3 q unless said.
interface ErrCall { q: Tensor; k: Tensor; v: Tensor; lens: unknown; opts?: unknown }
const f32 = (shape: number[], dtype: DType = 'float32') => randomTensor(rng(36000 + product(shape)), shape, dtype);
function base(o: Record<string, unknown> = {}, rank4 = false): ErrCall {
  return { q: f32(rank4 ? [2, 3, 4, 8] : [2, 4, 8]), k: f32([2, 10, 2, 8]), v: f32([2, 10, 2, 8]), lens: Int32Array.from([3, 5]), opts: o };
}
function pagedBase(o: Record<string, unknown> = {}): ErrCall {
  // 6 pages of 4 rows; maxPages 3 → capacity 12
  return { q: f32([2, 4, 8]), k: f32([6, 4, 2, 8]), v: f32([6, 4, 2, 8]), lens: Int32Array.from([3, 5]), opts: { blockTable: Int32Array.from([0, 999999, 999999, 1, 2, -1]), ...o } };
}
const newTokens = (Sq = 3) => ({ kNew: f32([2, Sq, 2, 8]), vNew: f32([2, Sq, 2, 8]) });

interface ErrCase { name: string; code: FmhaErrorCode; msg: RegExp[]; make: () => ErrCall }
const ERR_CASES: ErrCase[] = [
  { name: 'q of rank 2', code: 'ERR_FMHA_SHAPE', msg: [/\bq\b/, /rank/], make: () => ({ ...base(), q: f32([2, 32]) }) },
  { name: 'q of rank 5', code: 'ERR_FMHA_SHAPE', msg: [/\bq\b/], make: () => ({ ...base(), q: f32([2, 1, 1, 4, 8]) }) },
  { name: 'q not a Tensor', code: 'ERR_FMHA_DTYPE', msg: [/\bq\b/], make: () => ({ ...base(), q: new Float32Array(64) as unknown as Tensor }) },
  { name: 'kCache not a Tensor', code: 'ERR_FMHA_DTYPE', msg: [/kCache/], make: () => ({ ...base(), k: {} as Tensor }) },
  { name: 'kCache of rank 3', code: 'ERR_FMHA_SHAPE', msg: [/kCache/], make: () => ({ ...base(), k: f32([20, 2, 8]) }) },
  { name: 'kCache dtype ≠ q dtype', code: 'ERR_FMHA_DTYPE', msg: [/kCache/, /float16/], make: () => ({ ...base(), k: f32([2, 10, 2, 8], 'float16'), v: f32([2, 10, 2, 8], 'float16') }) },
  { name: 'vCache dtype ≠ kCache dtype', code: 'ERR_FMHA_DTYPE', msg: [/vCache/], make: () => ({ ...base(), v: f32([2, 10, 2, 8], 'bfloat16') }) },
  { name: 'head dim of kCache ≠ q\'s', code: 'ERR_FMHA_SHAPE', msg: [/headDim/, /\b16\b/], make: () => ({ ...base(), k: f32([2, 10, 2, 16]), v: f32([2, 10, 2, 16]) }) },
  { name: 'head dim 257', code: 'ERR_FMHA_SHAPE', msg: [/headDim/, /256/], make: () => ({ ...base(), q: f32([2, 4, 257]), k: f32([2, 10, 2, 257]), v: f32([2, 10, 2, 257]) }) },
  { name: 'Hq % Hkv ≠ 0', code: 'ERR_FMHA_SHAPE', msg: [/headsKV/, /\b3\b/], make: () => ({ ...base(), k: f32([2, 10, 3, 8]), v: f32([2, 10, 3, 8]) }) },
  { name: 'vCache capacity ≠ kCache\'s', code: 'ERR_FMHA_SHAPE', msg: [/vCache/], make: () => ({ ...base(), v: f32([2, 9, 2, 8]) }) },
  { name: 'contiguous kCache batch ≠ q batch', code: 'ERR_FMHA_SHAPE', msg: [/kCache/, /batch/], make: () => ({ ...base(), k: f32([3, 10, 2, 8]), v: f32([3, 10, 2, 8]) }) },
  { name: 'cacheSeqlens a Uint32Array', code: 'ERR_FMHA_DTYPE', msg: [/cacheSeqlens/, /Int32Array/], make: () => ({ ...base(), lens: Uint32Array.from([3, 5]) }) },
  { name: 'cacheSeqlens a number[]', code: 'ERR_FMHA_DTYPE', msg: [/cacheSeqlens/], make: () => ({ ...base(), lens: [3, 5] }) },
  { name: 'cacheSeqlens missing', code: 'ERR_FMHA_DTYPE', msg: [/cacheSeqlens/], make: () => ({ ...base(), lens: undefined }) },
  { name: 'cacheSeqlens of length 3 (B 2)', code: 'ERR_FMHA_SHAPE', msg: [/cacheSeqlens/, /\b2\b/], make: () => ({ ...base(), lens: Int32Array.from([3, 5, 1]) }) },
  { name: 'cacheSeqlens of length 1 (B 2)', code: 'ERR_FMHA_SHAPE', msg: [/cacheSeqlens/], make: () => ({ ...base(), lens: Int32Array.from([3]) }) },
  { name: 'cacheSeqlens negative', code: 'ERR_FMHA_ARGUMENT', msg: [/cacheSeqlens\[1\]/, /-1/], make: () => ({ ...base(), lens: Int32Array.from([3, -1]) }) },
  { name: 'cacheSeqlens > capacity', code: 'ERR_FMHA_ARGUMENT', msg: [/cacheSeqlens\[0\]/, /\b10\b/, /\b11\b/], make: () => ({ ...base(), lens: Int32Array.from([11, 5]) }) },
  { name: 'cacheSeqlens 2^31 − 1', code: 'ERR_FMHA_ARGUMENT', msg: [/cacheSeqlens/], make: () => ({ ...base(), lens: Int32Array.from([3, 2 ** 31 - 1]) }) },
  { name: 'with kNew (Sq 3): cacheSeqlens[0] = 2 < Sq', code: 'ERR_FMHA_ARGUMENT', msg: [/cacheSeqlens\[0\]/, /\b3\b/], make: () => ({ ...base(newTokens(), true), lens: Int32Array.from([2, 5]) }) },
  { name: 'paged: cacheSeqlens > maxPages × pageSize', code: 'ERR_FMHA_ARGUMENT', msg: [/cacheSeqlens\[1\]/, /\b12\b/], make: () => ({ ...pagedBase(), lens: Int32Array.from([3, 13]) }) },
  { name: 'paged: blockTable length not a multiple of B', code: 'ERR_FMHA_SHAPE', msg: [/blockTable/], make: () => pagedBase({ blockTable: Int32Array.from([0, 1, 2, 3, 4]) }) },
  { name: 'paged: blockTable empty with B 2', code: 'ERR_FMHA_SHAPE', msg: [/blockTable/], make: () => pagedBase({ blockTable: new Int32Array(0) }) },
  { name: 'paged: blockTable a number[]', code: 'ERR_FMHA_DTYPE', msg: [/blockTable/], make: () => pagedBase({ blockTable: [0, 1, 2, 3, 4, 5] }) },
  { name: 'paged: a page index = numPages within a length', code: 'ERR_FMHA_ARGUMENT', msg: [/blockTable\[1, 1\]/, /\b6\b/], make: () => pagedBase({ blockTable: Int32Array.from([0, 9, 9, 1, 6, 9]) }) },
  { name: 'paged: a page index −1 within a length', code: 'ERR_FMHA_ARGUMENT', msg: [/blockTable\[0, 0\]/], make: () => pagedBase({ blockTable: Int32Array.from([-1, 0, 0, 1, 2, 3]) }) },
  { name: 'strategy \'fast\'', code: 'ERR_FMHA_ARGUMENT', msg: [/strategy/, /fast/], make: () => base({ strategy: 'fast' }) },
  { name: 'strategy a number', code: 'ERR_FMHA_ARGUMENT', msg: [/strategy/], make: () => base({ strategy: 1 }) },
  { name: 'an unknown option', code: 'ERR_FMHA_ARGUMENT', msg: [/causl/], make: () => base({ causl: true }) },
  { name: 'seqlensK (no key padding in decode)', code: 'ERR_FMHA_ARGUMENT', msg: [/seqlensK/], make: () => base({ seqlensK: Int32Array.from([3, 5]) }) },
  { name: 'bias', code: 'ERR_FMHA_ARGUMENT', msg: [/bias/], make: () => base({ bias: f32([2, 4, 1, 10]) }) },
  { name: 'seqIds (an option of decode on a KVCache)', code: 'ERR_FMHA_ARGUMENT', msg: [/seqIds/], make: () => base({ seqIds: [0, 1] }) },
  // Regression: lib's toNativeOptions once turned a primitive opts into {} (`{ signal, ...rest } = 3`), so the
  // call succeeded with no options; fixed in df35888 (a non-object goes to the binding to refuse).
  { name: 'opts a number', code: 'ERR_FMHA_ARGUMENT', msg: [/opts/], make: () => ({ ...base(), opts: 3 }) },
  { name: 'kNew without vNew', code: 'ERR_FMHA_ARGUMENT', msg: [/kNew/, /vNew/], make: () => base({ kNew: newTokens().kNew }, true) },
  { name: 'vNew without kNew', code: 'ERR_FMHA_ARGUMENT', msg: [/vNew/], make: () => base({ vNew: newTokens().vNew }, true) },
  { name: 'kNew of the wrong shape', code: 'ERR_FMHA_SHAPE', msg: [/kNew/, /\[2, 3, 2, 8\]/], make: () => base({ kNew: f32([2, 2, 2, 8]), vNew: newTokens().vNew }, true) },
  { name: 'vNew of the wrong shape', code: 'ERR_FMHA_SHAPE', msg: [/vNew/], make: () => base({ ...newTokens(), vNew: f32([2, 3, 1, 8]) }, true) },
  { name: 'kNew of the wrong dtype', code: 'ERR_FMHA_DTYPE', msg: [/kNew/], make: () => base({ ...newTokens(), kNew: f32([2, 3, 2, 8], 'float16') }, true) },
  { name: 'kNew not a Tensor', code: 'ERR_FMHA_DTYPE', msg: [/kNew/], make: () => base({ ...newTokens(), kNew: new Float32Array(96) }, true) },
  { name: 'out overlapping kCache', code: 'ERR_FMHA_ARGUMENT', msg: [/out/, /overlap/], make: () => { const c = base(); return { ...c, opts: { out: new Tensor('float32', (c.k.data as Float32Array).subarray(0, 64), [2, 4, 8]) } }; } },
  { name: 'out overlapping kNew', code: 'ERR_FMHA_ARGUMENT', msg: [/out/, /kNew/], make: () => { const t = newTokens(1); return { ...base(t, true), q: f32([2, 1, 2, 8]), opts: { ...t, out: new Tensor('float32', (t.kNew.data as Float32Array).subarray(0, 32), [2, 1, 2, 8]) } }; } },
  { name: 'out overlapping q', code: 'ERR_FMHA_ARGUMENT', msg: [/out/], make: () => { const c = base(); return { ...c, opts: { out: c.q } }; } },
  { name: 'out of the rank-4 shape for a rank-3 q', code: 'ERR_FMHA_SHAPE', msg: [/out/], make: () => base({ out: nanTensor([2, 1, 4, 8]) }) },
  { name: 'out of another dtype', code: 'ERR_FMHA_DTYPE', msg: [/out/], make: () => base({ out: nanTensor([2, 4, 8], 'float16') }) },
  { name: 'backend \'cuda\' on a host-only build/machine', code: 'ERR_FMHA_BACKEND', msg: [/cuda/i], make: () => base({ backend: 'cuda' }) },
  { name: 'backend \'gpu\'', code: 'ERR_FMHA_ARGUMENT', msg: [/backend/], make: () => base({ backend: 'gpu' }) },
  { name: 'scale NaN', code: 'ERR_FMHA_ARGUMENT', msg: [/scale/], make: () => base({ scale: NaN }) },
  { name: 'softcap negative', code: 'ERR_FMHA_ARGUMENT', msg: [/softcap/], make: () => base({ softcap: -1 }) },
  { name: 'window [−2, 0]', code: 'ERR_FMHA_ARGUMENT', msg: [/window/], make: () => base({ window: [-2, 0] }) },
  { name: 'alibiSlopes of length Hkv', code: 'ERR_FMHA_SHAPE', msg: [/alibiSlopes/], make: () => base({ alibiSlopes: new Float32Array(2) }) },
  { name: 'alibiSlopes a Float64Array', code: 'ERR_FMHA_DTYPE', msg: [/alibiSlopes/], make: () => base({ alibiSlopes: new Float64Array(4) }) },
];

for (const c of ERR_CASES) {
  errs(`${c.code}: ${c.name}`, async () => {
    const call = c.make();
    const opts = call.opts as DecodeAttentionOptions;
    // kNew's rows and out must stay as they are: every check precedes any write
    const withNew = { ...(opts && typeof opts === 'object' ? opts : {}) } as DecodeAttentionOptions;
    const kBefore = call.k.data?.slice?.(), vBefore = call.v.data?.slice?.();
    const out = withNew.out, outBefore = out?.data.slice();
    const lens = call.lens as Int32Array;
    assertFmhaError(await catchAsync(() => decodeAttention(call.q, call.k, call.v, lens, opts), c.name), c.code, c.msg, `async: ${c.name}`);
    assertFmhaError(catchSync(() => decodeAttentionSync(call.q, call.k, call.v, lens, opts)), c.code, c.msg, `sync: ${c.name}`);
    if (kBefore) assert.ok(bitwiseEqual(call.k.data, kBefore), `${c.name}: kCache not written`);
    if (vBefore) assert.ok(bitwiseEqual(call.v.data, vBefore), `${c.name}: vCache not written`);
    if (out && outBefore) assert.ok(bitwiseEqual(out.data, outBefore), `${c.name}: out not written`);
  });
}

errs('a failing check after the kNew checks (bad strategy, out overlap, backend) writes nothing into the cache', async () => {
  for (const extra of [{ strategy: 'nope' }, { backend: 'cuda' }, { window: [0.5, 1] }] as Record<string, unknown>[]) {
    const call = base({ ...newTokens(), ...extra }, true);
    const before = call.k.data.slice();
    const err = catchSync(() => decodeAttentionSync(call.q, call.k, call.v, call.lens as Int32Array, call.opts as DecodeAttentionOptions));
    assert.instance(err, FmhaError, JSON.stringify(extra));
    assert.ok(bitwiseEqual(call.k.data, before), `${JSON.stringify(extra)}: cache untouched`);
  }
});

errs('garbage block-table entries past each length are accepted (and not read)', async () => {
  const call = pagedBase();
  // lengths 3 (page 0) and 5 (pages 1, 2): entries [0, 1], [0, 2] (999999) and [1, 2] (−1) are garbage
  const res = decodeAttentionSync(call.q, call.k, call.v, call.lens as Int32Array, { ...(call.opts as object), returnLse: true });
  const bt = (call.opts as { blockTable: Int32Array }).blockTable;
  checkDecode('garbage past lengths', res, referenceDecode(call.q, call.k, call.v, call.lens as Int32Array, {}, bt), 'float32');
  // a length of exactly one page: the second entry is not needed even when out of range
  const one = decodeAttentionSync(call.q, call.k, call.v, Int32Array.from([4, 4]), { blockTable: Int32Array.from([0, -7, 999999, 1, 2 ** 31 - 1, -1]) });
  assert.equal([...one.shape], [2, 4, 8]);
});

errs('seeded fuzz: 1500 random cacheSeqlens / blockTable combinations give a result or an FmhaError, never a crash', () => {
  const r = rng(36100);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const call = pagedBase();
  let ok = 0, rejected = 0;
  for (let i = 0; i < 1500; i++) {
    const lens = Int32Array.from({ length: pick([1, 2, 2, 2, 3]) }, () => pick([-1, 0, 1, 3, 4, 5, 8, 12, 13, 2 ** 31 - 1]));
    const bt = Int32Array.from({ length: pick([0, 2, 4, 5, 6, 8]) }, () => pick([-1, 0, 1, 2, 5, 6, 999999]));
    try {
      decodeAttentionSync(call.q, call.k, call.v, lens, { blockTable: bt, causal: r() < 0.5 });
      ok++;
    } catch (e) {
      if (!(e instanceof FmhaError)) assert.unreachable(`call ${i} threw ${describe(e)}`);
      rejected++;
    }
  }
  assert.ok(ok > 20 && rejected > 500, `some valid (${ok}), most rejected (${rejected})`);
});
errs.run();
