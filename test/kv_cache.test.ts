// KVCache (DESIGN §3): contiguous and paged caches written in place by append()
// and by decode()'s fused kNew/vNew. A JS shadow of every sequence's keys and
// values is the model: decode(q, cache, { seqIds }) is checked against the
// float64 reference on the shadow, and against decodeAttention on raw tensors
// holding the same data. Covers constructor validation, append with and
// without seqIds, lengths' copy semantics, capacity / free-page exhaustion
// (ARGUMENT, nothing written), reset and the page pool, 'cache busy' while an
// async decode is in flight, dispose / Symbol.asyncDispose, and bad arguments.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Tensor, FmhaError, KVCache, decode, decodeSync, decodeAttentionSync,
  type KVCacheOptions, type CacheDecodeOptions, type AttentionWithLse, type DType, type FmhaErrorCode,
} from '../lib/index.js';
import {
  referenceAttention, readValues, relFrobenius, compareLse, bitwiseEqual, rng, product,
  OUT_TOL, LSE_TOL, type RefOptions, type TensorLike,
} from './reference.js';
import { randomTensor, nanData, alibi, assertFmhaError, catchAsync, catchSync, describe } from './helpers.js';

// ---------------------------------------------------------------------------
// The shadow: every sequence's rows as the cache should hold them (decoded values).

class Shadow {
  readonly k: Float64Array[][];
  readonly v: Float64Array[][];
  constructor(readonly batch: number, readonly Hkv: number, readonly D: number, readonly Dv: number) {
    this.k = Array.from({ length: batch }, () => []);
    this.v = Array.from({ length: batch }, () => []);
  }
  lengths(): number[] { return this.k.map((rows) => rows.length); }
  /** Mirrors append(k [B', n, Hkv, D], v, ids). */
  append(k: Tensor, v: Tensor, ids?: ArrayLike<number>): void {
    const [B, n] = k.shape as [number, number];
    const kv = readValues(k), vv = readValues(v), kr = this.Hkv * this.D, vr = this.Hkv * this.Dv;
    for (let b = 0; b < B; b++) {
      const s = ids ? ids[b]! : b;
      for (let t = 0; t < n; t++) {
        this.k[s]!.push(kv.slice((b * n + t) * kr, (b * n + t + 1) * kr));
        this.v[s]!.push(vv.slice((b * n + t) * vr, (b * n + t + 1) * vr));
      }
    }
  }
  reset(s: number): void { this.k[s] = []; this.v[s] = []; }
  /**
   * The listed sequences as a raw contiguous cache [B', cap, Hkv, D] in dtype (rows
   * past each length NaN), with their lengths: what decodeAttention takes.
   */
  raw(ids: readonly number[], cap: number, dtype: DType): { k: Tensor; v: Tensor; lens: Int32Array } {
    const B = ids.length, kr = this.Hkv * this.D, vr = this.Hkv * this.Dv;
    const kf = new Float32Array(B * cap * kr).fill(NaN), vf = new Float32Array(B * cap * vr).fill(NaN);
    ids.forEach((s, b) => {
      this.k[s]!.forEach((row, j) => kf.set(row, (b * cap + j) * kr));
      this.v[s]!.forEach((row, j) => vf.set(row, (b * cap + j) * vr));
    });
    return {
      k: Tensor.fromFloat32(kf, [B, cap, this.Hkv, this.D], dtype),
      v: Tensor.fromFloat32(vf, [B, cap, this.Hkv, this.Dv], dtype),
      lens: Int32Array.from(ids, (s) => this.k[s]!.length),
    };
  }
}

interface Ref {
  out: Float64Array; lse: Float64Array; noKey: Uint8Array;
  outShape: number[]; lseShape: number[];
  B: number; Sq: number; Hq: number; Dv: number;
}

const f64 = (shape: number[], data: Float64Array): TensorLike => ({ dtype: 'float32', shape, data });

/** referenceAttention per batch row b over shadow sequence ids[b] (Sk = its length). */
function referenceOnShadow(q: Tensor, sh: Shadow, ids: readonly number[], opts: RefOptions = {}): Ref {
  const rank3 = q.shape.length === 3;
  const [B, Sq, Hq, D] = rank3 ? [q.shape[0]!, 1, q.shape[1]!, q.shape[2]!] : q.shape as [number, number, number, number];
  const { Hkv, Dv } = sh;
  const qv = readValues(q);
  const out = new Float64Array(B * Sq * Hq * Dv), lse = new Float64Array(B * Hq * Sq), noKey = new Uint8Array(B * Hq * Sq);
  for (let b = 0; b < B; b++) {
    const rows = sh.k[ids[b]!]!, vrows = sh.v[ids[b]!]!, L = rows.length;
    const kb = new Float64Array(L * Hkv * D), vb = new Float64Array(L * Hkv * Dv);
    rows.forEach((r, j) => kb.set(r, j * Hkv * D));
    vrows.forEach((r, j) => vb.set(r, j * Hkv * Dv));
    const r = referenceAttention(f64([1, Sq, Hq, D], qv.subarray(b * Sq * Hq * D, (b + 1) * Sq * Hq * D)),
      f64([1, L, Hkv, D], kb), f64([1, L, Hkv, Dv], vb), opts);
    out.set(r.out, b * Sq * Hq * Dv);
    lse.set(r.lse, b * Hq * Sq);
    noKey.set(r.noKey, b * Hq * Sq);
  }
  return {
    out, lse, noKey, B, Sq, Hq, Dv,
    outShape: rank3 ? [B, Hq, Dv] : [B, Sq, Hq, Dv], lseShape: rank3 ? [B, Hq] : [B, Hq, Sq],
  };
}

/** Within DESIGN's bounds per sequence; rows that see no key exactly 0 / −Infinity. */
function check(label: string, res: { out: Tensor; lse?: Tensor }, ref: Ref, dtype: DType): void {
  assert.instance(res.out, Tensor, `${label}: out is a Tensor`);
  assert.equal([...res.out.shape], ref.outShape, `${label}: out.shape`);
  assert.is(res.out.dtype, dtype, `${label}: out.dtype`);
  const got = readValues(res.out);
  for (let i = 0; i < got.length; i++) if (!Number.isFinite(got[i]!)) assert.unreachable(`${label}: out[${i}] = ${got[i]}`);
  const per = ref.Sq * ref.Hq * ref.Dv;
  for (let b = 0; b < ref.B; b++) {
    const err = relFrobenius(got.subarray(b * per, (b + 1) * per), ref.out.subarray(b * per, (b + 1) * per));
    if (!(err < OUT_TOL[dtype])) assert.unreachable(`${label}: batch row ${b}: relative Frobenius error ${err.toExponential(3)} ≥ ${OUT_TOL[dtype]}`);
  }
  for (let b = 0; b < ref.B; b++) for (let h = 0; h < ref.Hq; h++) for (let i = 0; i < ref.Sq; i++) {
    if (!ref.noKey[(b * ref.Hq + h) * ref.Sq + i]) continue;
    const base = ((b * ref.Sq + i) * ref.Hq + h) * ref.Dv;
    for (let d = 0; d < ref.Dv; d++) if (got[base + d] !== 0) assert.unreachable(`${label}: row (${b}, ${h}, ${i}) sees no key, out = ${got[base + d]}`);
  }
  if (res.lse) {
    assert.equal([...res.lse.shape], ref.lseShape, `${label}: lse.shape`);
    const c = compareLse(readValues(res.lse), ref.lse, LSE_TOL[dtype]);
    assert.ok(c.ok, `${label}: ${c.message}`);
  }
}

const rel = (a: Tensor, b: Tensor) => relFrobenius(readValues(a), readValues(b));
const iota = (n: number) => Array.from({ length: n }, (_, i) => i);

/** A cache and its shadow. */
function make(opts: KVCacheOptions): { cache: KVCache; sh: Shadow } {
  const cache = new KVCache(opts);
  return { cache, sh: new Shadow(opts.batch, opts.kvHeads, opts.headDim, opts.headDimV ?? opts.headDim) };
}

/** Appends n random tokens to the listed sequences (all when ids is undefined), in cache and shadow. */
function appendRandom(r: () => number, cache: KVCache, sh: Shadow, n: number, ids?: number[] | Int32Array): void {
  const B = ids ? ids.length : cache.batch;
  const k = randomTensor(r, [B, n, cache.kvHeads, cache.headDim], cache.dtype);
  const v = randomTensor(r, [B, n, cache.kvHeads, cache.headDimV], cache.dtype);
  cache.append(k, v, ids);
  sh.append(k, v, ids);
  assert.equal([...cache.lengths], sh.lengths(), 'lengths after append');
}

const CONTIGUOUS: KVCacheOptions = { batch: 4, capacity: 300, kvHeads: 2, headDim: 40, headDimV: 24 };
const PAGED: KVCacheOptions = { ...CONTIGUOUS, pageSize: 16 };

// ---------------------------------------------------------------------------
const ctor = suite('KVCache: constructor');

ctor('properties; a fresh cache: lengths 0, freePages (paged: batch × ⌈capacity / pageSize⌉ by default; contiguous: 0)', () => {
  const c = new KVCache({ batch: 3, capacity: 50, kvHeads: 2, headDim: 8 });
  assert.equal([c.batch, c.capacity, c.kvHeads, c.headDim, c.headDimV, c.dtype, c.pageSize], [3, 50, 2, 8, 8, 'float32', undefined]);
  assert.equal([...c.lengths], [0, 0, 0]);
  assert.instance(c.lengths, Int32Array);
  assert.is(c.freePages, 0);
  const p = new KVCache({ batch: 3, capacity: 50, kvHeads: 2, headDim: 8, headDimV: 4, dtype: 'bfloat16', pageSize: 16 });
  assert.equal([p.headDimV, p.dtype, p.pageSize], [4, 'bfloat16', 16]);
  assert.is(p.freePages, 3 * 4);
  assert.is(new KVCache({ batch: 3, capacity: 50, kvHeads: 2, headDim: 8, pageSize: 16, numPages: 5 }).freePages, 5);
  assert.equal([...new KVCache({ batch: 0, capacity: 0, kvHeads: 1, headDim: 1 }).lengths], [], 'batch 0, capacity 0 are legal');
  c.dispose(); p.dispose();
});

const base = { batch: 2, capacity: 16, kvHeads: 2, headDim: 8 };
const CTOR_ERRS: [string, FmhaErrorCode | FmhaErrorCode[], RegExp[], unknown][] = [
  ['options missing', 'ERR_FMHA_ARGUMENT', [/options/], undefined],
  ['options a number', 'ERR_FMHA_ARGUMENT', [/options/], 4],
  ['batch missing', 'ERR_FMHA_ARGUMENT', [/batch/], { ...base, batch: undefined }],
  ['batch −1', 'ERR_FMHA_ARGUMENT', [/batch/], { ...base, batch: -1 }],
  ['batch 1.5', 'ERR_FMHA_ARGUMENT', [/batch/], { ...base, batch: 1.5 }],
  ['batch \'2\'', 'ERR_FMHA_ARGUMENT', [/batch/], { ...base, batch: '2' }],
  ['batch 2^31', 'ERR_FMHA_ARGUMENT', [/batch/], { ...base, batch: 2 ** 31 }],
  ['capacity −1', 'ERR_FMHA_ARGUMENT', [/capacity/], { ...base, capacity: -1 }],
  ['capacity NaN', 'ERR_FMHA_ARGUMENT', [/capacity/], { ...base, capacity: NaN }],
  ['kvHeads 0', 'ERR_FMHA_ARGUMENT', [/kvHeads/], { ...base, kvHeads: 0 }],
  ['kvHeads Infinity', 'ERR_FMHA_ARGUMENT', [/kvHeads/], { ...base, kvHeads: Infinity }],
  // DESIGN §4: "D or Dv outside [1, 256]" is ERR_FMHA_SHAPE, as decodeAttention answers for the same head dim.
  ['headDim 0', 'ERR_FMHA_SHAPE', [/headDim/], { ...base, headDim: 0 }],
  ['headDim 257', 'ERR_FMHA_SHAPE', [/headDim/, /256/], { ...base, headDim: 257 }],
  ['headDimV 300', 'ERR_FMHA_SHAPE', [/headDimV/], { ...base, headDimV: 300 }],
  ['headDim 8.5 (not an integer)', ['ERR_FMHA_ARGUMENT', 'ERR_FMHA_SHAPE'], [/headDim/], { ...base, headDim: 8.5 }],
  ['dtype \'float64\'', 'ERR_FMHA_DTYPE', [/dtype/, /float64/], { ...base, dtype: 'float64' }],
  ['dtype 32', 'ERR_FMHA_DTYPE', [/dtype/], { ...base, dtype: 32 }],
  ['device 0 (no device caches in this build)', 'ERR_FMHA_BACKEND', [/device/], { ...base, device: 0 }],
  ['pageSize 0', 'ERR_FMHA_ARGUMENT', [/pageSize/], { ...base, pageSize: 0 }],
  ['pageSize −16', 'ERR_FMHA_ARGUMENT', [/pageSize/], { ...base, pageSize: -16 }],
  ['pageSize 7.5', 'ERR_FMHA_ARGUMENT', [/pageSize/], { ...base, pageSize: 7.5 }],
  ['numPages −1', 'ERR_FMHA_ARGUMENT', [/numPages/], { ...base, pageSize: 4, numPages: -1 }],
  ['numPages without pageSize', 'ERR_FMHA_ARGUMENT', [/numPages/, /pageSize/], { ...base, numPages: 4 }],
  ['an absurd size (element count past 2^63)', 'ERR_FMHA_OOM', [/bytes/], { batch: 2 ** 31 - 1, capacity: 2 ** 31 - 1, kvHeads: 2 ** 31 - 1, headDim: 256 }],
  ['above FMHA_MAX_SCRATCH_BYTES (8 PB)', 'ERR_FMHA_OOM', [/bytes/, /FMHA_MAX_SCRATCH_BYTES/], { batch: 1000, capacity: 1_000_000, kvHeads: 8, headDim: 128 }],
  ['paged, absurd numPages', 'ERR_FMHA_OOM', [/bytes/], { batch: 1, capacity: 16, kvHeads: 64, headDim: 256, pageSize: 2 ** 20, numPages: 2 ** 31 - 1 }],
];
for (const [name, code, msg, opts] of CTOR_ERRS) {
  ctor(`${Array.isArray(code) ? code.join('|') : code}: ${name}`, () => {
    // Head dims outside [1, 256] are ERR_FMHA_SHAPE (DESIGN §4), as in decodeAttention.
    assertFmhaError(catchSync(() => new KVCache(opts as KVCacheOptions)), code, msg, name);
  });
}
ctor.run();

// ---------------------------------------------------------------------------
const app = suite('KVCache: append, lengths, capacity, pages, reset');

for (const layout of ['contiguous', 'paged'] as const) {
  app(`${layout}: append to all and to subsets (Int32Array and number[] ids), in place; decode vs the reference`, () => {
    const r = rng(40000);
    const { cache, sh } = make(layout === 'paged' ? PAGED : CONTIGUOUS);
    appendRandom(r, cache, sh, 5);                               // all: [5, 5, 5, 5]
    appendRandom(r, cache, sh, 20, [2, 0]);                      // [25, 5, 25, 5]
    appendRandom(r, cache, sh, 1, Int32Array.from([1]));         // [25, 6, 25, 5]
    appendRandom(r, cache, sh, 0);                               // 0 tokens: nothing changes
    appendRandom(r, cache, sh, 130, [3]);                        // [25, 6, 25, 135]
    assert.equal([...cache.lengths], [25, 6, 25, 135]);
    if (layout === 'paged') assert.is(cache.freePages, 4 * 19 - (2 + 1 + 2 + 9), 'pages taken: ⌈len / 16⌉ per sequence');
    const q = randomTensor(r, [4, 6, 40]);
    check(`${layout} all`, decodeSync(q, cache, { returnLse: true }), referenceOnShadow(q, sh, iota(4)), 'float32');
    cache.dispose();
  });
}

app('lengths returns a copy: mutating it changes nothing', () => {
  const { cache, sh } = make(CONTIGUOUS);
  appendRandom(rng(40100), cache, sh, 3);
  const l = cache.lengths;
  l[0] = 99; l.fill(-1);
  assert.equal([...cache.lengths], [3, 3, 3, 3]);
  assert.ok(cache.lengths !== cache.lengths, 'a new array each time');
  cache.dispose();
});

for (const layout of ['contiguous', 'paged'] as const) {
  app(`${layout}: passing capacity → ERR_FMHA_ARGUMENT, nothing written (lengths unchanged, data intact)`, () => {
    const r = rng(40200);
    const { cache, sh } = make({ ...(layout === 'paged' ? PAGED : CONTIGUOUS), capacity: 40 });
    appendRandom(r, cache, sh, 30, [0, 1]);
    const q = randomTensor(r, [4, 2, 6, 40]);
    const before = decodeSync(q, cache, { returnLse: true, causal: true });
    const freeBefore = cache.freePages;
    // sequence 1 fits (30 + 10 = 40 = capacity), sequence 0 would not (30 + 11): the whole append is refused
    for (const [n, ids] of [[11, [1, 0]], [41, [2]], [11, undefined]] as [number, number[] | undefined][]) {
      const B = ids ? ids.length : 4;
      const k = randomTensor(r, [B, n, 2, 40]), v = randomTensor(r, [B, n, 2, 24]);
      assertFmhaError(catchSync(() => cache.append(k, v, ids)), 'ERR_FMHA_ARGUMENT', [/capacity/, /\b40\b/], `append ${n} to ${ids ?? 'all'}`);
      assert.equal([...cache.lengths], [30, 30, 0, 0], 'lengths unchanged');
      assert.is(cache.freePages, freeBefore, 'no page taken');
    }
    const after = decodeSync(q, cache, { returnLse: true, causal: true });
    assert.ok(bitwiseEqual(before.out.data, after.out.data) && bitwiseEqual(before.lse.data, after.lse.data), 'decode unchanged');
    // filling to capacity exactly is fine
    appendRandom(r, cache, sh, 10, [1]);
    check(`${layout} at capacity`, decodeSync(q, cache, { returnLse: true, causal: true }), referenceOnShadow(q, sh, iota(4), { causal: true }), 'float32');
    cache.dispose();
  });
}

app('paged: no free page → ERR_FMHA_ARGUMENT with nothing written; reset frees pages; reused pages hold no stale data', () => {
  const r = rng(40300);
  const { cache, sh } = make({ batch: 3, capacity: 100, kvHeads: 2, headDim: 16, pageSize: 7, numPages: 10 });
  assert.is(cache.freePages, 10);
  appendRandom(r, cache, sh, 20, [0]);        // 3 pages
  appendRandom(r, cache, sh, 15, [1]);        // 3 pages
  assert.is(cache.freePages, 4);
  appendRandom(r, cache, sh, 1, [1]);         // 16 tokens: still 3 pages
  assert.is(cache.freePages, 4);
  const k30 = randomTensor(r, [1, 30, 2, 16]), v30 = randomTensor(r, [1, 30, 2, 16]);
  assertFmhaError(catchSync(() => cache.append(k30, v30, [2])), 'ERR_FMHA_ARGUMENT', [/free page/, /\b5\b/, /\b4\b/], 'needs 5 of 4');
  assert.equal([...cache.lengths], [20, 16, 0]);
  assert.is(cache.freePages, 4);
  // a batch append whose total is short of pages: nothing for anyone
  // sequence 1: 16 + 15 = 31 tokens → 2 more pages; sequence 2: 15 → 3 pages; 5 > 4
  const k2 = randomTensor(r, [2, 15, 2, 16]), v2 = randomTensor(r, [2, 15, 2, 16]);
  assertFmhaError(catchSync(() => cache.append(k2, v2, [1, 2])), 'ERR_FMHA_ARGUMENT', [/free page/], 'batch short of pages');
  assert.equal([...cache.lengths], [20, 16, 0]);
  assert.is(cache.freePages, 4);
  // reset(0) gives its 3 pages back; sequence 2 now takes 5, reusing sequence 0's
  cache.reset(0); sh.reset(0);
  assert.equal([...cache.lengths], [0, 16, 0]);
  assert.is(cache.freePages, 7);
  cache.append(k30, v30, [2]); sh.append(k30, v30, [2]);
  assert.is(cache.freePages, 2);
  const q = randomTensor(r, [3, 2, 16]);
  const ref = referenceOnShadow(q, sh, [0, 1, 2]);
  assert.ok(ref.noKey.subarray(0, 2).every((x) => x === 1), 'setup: sequence 0 is empty');
  check('after reset', decodeSync(q, cache, { returnLse: true }), ref, 'float32');
  // reset of an empty sequence and reset twice are fine
  cache.reset(0); cache.reset(0);
  assert.is(cache.freePages, 2);
  cache.dispose();
});

app('bad or duplicate sequence ids → FmhaError, nothing written', () => {
  const { cache, sh } = make(CONTIGUOUS);
  appendRandom(rng(40400), cache, sh, 2);
  const t = (B: number, D = 40) => randomTensor(rng(40401), [B, 1, 2, D]);
  const cases: [string, FmhaErrorCode, unknown, number][] = [
    ['id = batch', 'ERR_FMHA_ARGUMENT', [4], 1],
    ['id −1', 'ERR_FMHA_ARGUMENT', Int32Array.from([-1]), 1],
    ['id 0.5', 'ERR_FMHA_ARGUMENT', [0.5], 1],
    ['id NaN', 'ERR_FMHA_ARGUMENT', [NaN], 1],
    ['id \'1\'', 'ERR_FMHA_ARGUMENT', ['1'], 1],
    ['duplicate ids', 'ERR_FMHA_ARGUMENT', [1, 2, 1], 3],
    ['duplicate ids (Int32Array)', 'ERR_FMHA_ARGUMENT', Int32Array.from([3, 3]), 2],
    ['ids a number', 'ERR_FMHA_DTYPE', 1, 1],
    ['ids a Float64Array', 'ERR_FMHA_DTYPE', Float64Array.from([1]), 1],
  ];
  for (const [name, code, ids, B] of cases) {
    assertFmhaError(catchSync(() => cache.append(t(B), t(B, 24), ids as number[])), code, [/seqIds/], `append: ${name}`);
    assert.equal([...cache.lengths], [2, 2, 2, 2], `${name}: lengths unchanged`);
  }
  for (const id of [4, -1, 1.5, NaN, '0', undefined]) {
    assertFmhaError(catchSync(() => cache.reset(id as number)), 'ERR_FMHA_ARGUMENT', [/seqId/], `reset(${String(id)})`);
  }
  assert.equal([...cache.lengths], [2, 2, 2, 2]);
  cache.dispose();
});

app('append: tensors of the wrong shape, dtype or kind → SHAPE / DTYPE, nothing written', () => {
  const { cache } = make(CONTIGUOUS);
  const f = (shape: number[], dtype: DType = 'float32') => randomTensor(rng(40500), shape, dtype);
  const cases: [string, FmhaErrorCode, () => void][] = [
    ['k batch ≠ cache batch', 'ERR_FMHA_SHAPE', () => cache.append(f([3, 1, 2, 40]), f([3, 1, 2, 24]))],
    ['k batch ≠ seqIds.length', 'ERR_FMHA_SHAPE', () => cache.append(f([3, 1, 2, 40]), f([3, 1, 2, 24]), [0, 1])],
    ['k heads ≠ kvHeads', 'ERR_FMHA_SHAPE', () => cache.append(f([4, 1, 1, 40]), f([4, 1, 1, 24]))],
    ['k headDim ≠', 'ERR_FMHA_SHAPE', () => cache.append(f([4, 1, 2, 24]), f([4, 1, 2, 24]))],
    ['v headDimV ≠', 'ERR_FMHA_SHAPE', () => cache.append(f([4, 1, 2, 40]), f([4, 1, 2, 40]))],
    ['v tokens ≠ k tokens', 'ERR_FMHA_SHAPE', () => cache.append(f([4, 2, 2, 40]), f([4, 1, 2, 24]))],
    ['k of rank 3', 'ERR_FMHA_SHAPE', () => cache.append(f([4, 2, 40]), f([4, 2, 24]))],
    ['k bfloat16 in a float32 cache', 'ERR_FMHA_DTYPE', () => cache.append(f([4, 1, 2, 40], 'bfloat16'), f([4, 1, 2, 24]))],
    ['k not a Tensor', 'ERR_FMHA_DTYPE', () => cache.append(new Float32Array(320) as unknown as Tensor, f([4, 1, 2, 24]))],
  ];
  for (const [name, code, fn] of cases) {
    assertFmhaError(catchSync(fn), code, [], name);
    assert.equal([...cache.lengths], [0, 0, 0, 0], `${name}: nothing written`);
  }
  cache.dispose();
});

app('edge cases: batch 0, capacity 0, numPages 0, empty seqIds', async () => {
  const c0 = new KVCache({ batch: 0, capacity: 10, kvHeads: 1, headDim: 4 });
  const q0 = randomTensor(rng(40700), [0, 2, 4]);
  assert.equal([...decodeSync(q0, c0).shape], [0, 2, 4]);
  assert.equal([...(await decode(q0, c0, { returnLse: true })).lse.shape], [0, 2]);
  c0.append(randomTensor(rng(40701), [0, 3, 1, 4]), randomTensor(rng(40702), [0, 3, 1, 4]));
  const one = randomTensor(rng(40703), [1, 1, 1, 4]);
  const cz = new KVCache({ batch: 1, capacity: 0, kvHeads: 1, headDim: 4, pageSize: 4 });
  assert.is(cz.freePages, 0);
  assertFmhaError(catchSync(() => cz.append(one, one)), 'ERR_FMHA_ARGUMENT', [/capacity/], 'capacity 0');
  const res = decodeSync(randomTensor(rng(40704), [1, 2, 4]), cz, { returnLse: true });
  assert.equal([...res.lse.data], [-Infinity, -Infinity], 'nothing to see');
  const np0 = new KVCache({ batch: 1, capacity: 8, kvHeads: 1, headDim: 4, pageSize: 4, numPages: 0 });
  assertFmhaError(catchSync(() => np0.append(one, one)), 'ERR_FMHA_ARGUMENT', [/free page/], 'numPages 0');
  const c = new KVCache({ batch: 2, capacity: 8, kvHeads: 1, headDim: 4 });
  assert.equal([...decodeSync(q0, c, { seqIds: [] }).shape], [0, 2, 4], 'decode of no sequence');
  c.append(randomTensor(rng(40705), [0, 1, 1, 4]), randomTensor(rng(40706), [0, 1, 1, 4]), []);
  assert.equal([...c.lengths], [0, 0]);
  for (const x of [c0, cz, np0, c]) x.dispose();
});

app('strided k / v (slices of one [B, n, 2, Hkv, D] projection) append correctly', () => {
  const { cache, sh } = make({ batch: 2, capacity: 20, kvHeads: 2, headDim: 8 });
  const kv = randomTensor(rng(40600), [2, 5, 2, 2, 8]);
  const st = [5 * 2 * 2 * 8, 2 * 2 * 8, 8, 1];
  const k = new Tensor('float32', kv.data, [2, 5, 2, 8], st), v = new Tensor('float32', kv.data.subarray(16), [2, 5, 2, 8], st);
  cache.append(k, v); sh.append(k, v);
  const q = randomTensor(rng(40601), [2, 4, 8]);
  check('strided append', decodeSync(q, cache, { returnLse: true }), referenceOnShadow(q, sh, [0, 1]), 'float32');
  cache.dispose();
});
app.run();

// ---------------------------------------------------------------------------
const dec = suite('KVCache: decode(q, cache, { seqIds }) and the fused append');

for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
  dec(`${dtype}: decode on a subset (seqIds) vs the reference; rank 3 and rank 4, causal, alibi; sync == async`, async () => {
    const r = rng(41000);
    for (const layout of ['contiguous', 'paged'] as const) {
      const { cache, sh } = make({ ...(layout === 'paged' ? PAGED : CONTIGUOUS), dtype, capacity: 700 });
      appendRandom(r, cache, sh, 1, [0]);
      appendRandom(r, cache, sh, 17, [1]);
      appendRandom(r, cache, sh, 600, [3]);   // sequence 2 stays empty
      for (const ids of [[3, 1], [2], [0, 3, 2, 1], Int32Array.from([1, 0])]) {
        const B = ids.length;
        const q3 = randomTensor(r, [B, 6, 40], dtype), q4 = randomTensor(r, [B, 3, 6, 40], dtype);
        const o3: CacheDecodeOptions = { seqIds: ids, returnLse: true };
        check(`${dtype} ${layout} [${[...ids]}] rank 3`, decodeSync(q3, cache, o3 as { returnLse: true }), referenceOnShadow(q3, sh, [...ids]), dtype);
        const o4 = { seqIds: ids, returnLse: true as const, causal: true, alibiSlopes: alibi(6) };
        const ref4 = referenceOnShadow(q4, sh, [...ids], o4);
        const s = decodeSync(q4, cache, o4), a = await decode(q4, cache, o4);
        check(`${dtype} ${layout} [${[...ids]}] rank 4 sync`, s, ref4, dtype);
        check(`${dtype} ${layout} [${[...ids]}] rank 4 async`, a, ref4, dtype);
        assert.ok(bitwiseEqual(s.out.data, a.out.data), 'sync == async bitwise');
      }
      cache.dispose();
    }
  });
}

dec('decode of a fresh cache: every row sees no key (out 0, lse −Infinity)', async () => {
  const { cache, sh } = make(PAGED);
  const q = randomTensor(rng(41100), [4, 2, 6, 40]);
  const res = await decode(q, cache, { returnLse: true, causal: true });
  check('fresh', res, referenceOnShadow(q, sh, iota(4), { causal: true }), 'float32');
  assert.ok((res.lse.data as Float32Array).every((x) => x === -Infinity));
  cache.dispose();
});

for (const layout of ['contiguous', 'paged'] as const) {
  for (const mode of ['sync', 'async'] as const) {
    dec(`${layout} ${mode}: decode with kNew/vNew appends (lengths grow by Sq) and equals decodeAttention on the same raw tensors`, async () => {
      const r = rng(41200);
      const { cache, sh } = make({ ...(layout === 'paged' ? { ...PAGED, pageSize: 7 } : CONTIGUOUS), capacity: 400 });
      appendRandom(r, cache, sh, 13, [0, 1, 2]);
      appendRandom(r, cache, sh, 250, [1]);
      for (const [Sq, ids] of [[3, [1, 3, 0]], [1, undefined], [4, [3]]] as [number, number[] | undefined][]) {
        const list = ids ?? iota(4), B = list.length;
        const q = randomTensor(r, [B, Sq, 6, 40]);
        const kNew = randomTensor(r, [B, Sq, 2, 40]), vNew = randomTensor(r, [B, Sq, 2, 24]);
        // the raw equivalent: the cache before the call, new rows written by decodeAttention itself
        const before = sh.lengths();
        const raw = sh.raw(list, 400, 'float32');
        const lensAfter = Int32Array.from(raw.lens, (l) => l + Sq);
        const rawRes = decodeAttentionSync(q, raw.k, raw.v, lensAfter, { kNew, vNew, causal: true, returnLse: true });
        const opts = { ...(ids ? { seqIds: ids } : {}), kNew, vNew, causal: true, returnLse: true as const };
        const res = mode === 'sync' ? decodeSync(q, cache, opts) : await decode(q, cache, opts);
        sh.append(kNew, vNew, list);
        const want = before.map((l, s) => (list.includes(s) ? l + Sq : l));
        assert.equal([...cache.lengths], want, `Sq ${Sq} ids ${ids}: lengths grew by Sq`);
        const ref = referenceOnShadow(q, sh, list, { causal: true });
        check(`${layout} ${mode} Sq ${Sq}`, res, ref, 'float32');
        check(`raw decodeAttention Sq ${Sq}`, rawRes, ref, 'float32');
        const e = rel(res.out, rawRes.out);
        assert.ok(e < 1e-6, `KVCache vs decodeAttention on raw tensors: ${e.toExponential(3)}`);
      }
      // the appended rows stay: a plain decode afterwards sees them
      const q = randomTensor(r, [4, 6, 40]);
      check('after fused appends', decodeSync(q, cache, { returnLse: true }), referenceOnShadow(q, sh, iota(4)), 'float32');
      cache.dispose();
    });
  }
}

dec('a refused fused append (capacity, pages, shapes) leaves lengths and pages as they were; the cache is not left busy', async () => {
  const r = rng(41300);
  const { cache, sh } = make({ batch: 2, capacity: 20, kvHeads: 1, headDim: 8, pageSize: 4, numPages: 6 });
  appendRandom(r, cache, sh, 18, [0]);      // 5 pages, 1 free
  const nt = (B: number, Sq: number) => ({ kNew: randomTensor(r, [B, Sq, 1, 8]), vNew: randomTensor(r, [B, Sq, 1, 8]) });
  const cases: [string, FmhaErrorCode, RegExp, () => Promise<unknown>][] = [
    // sequence 0: 18 + 3 > 20
    ['capacity', 'ERR_FMHA_ARGUMENT', /capacity/, () => decode(randomTensor(r, [2, 3, 2, 8]), cache, nt(2, 3))],
    // sequence 1: 5 tokens need 2 pages, 1 is free
    ['no free page', 'ERR_FMHA_ARGUMENT', /free page/, () => decode(randomTensor(r, [1, 5, 2, 8]), cache, { ...nt(1, 5), seqIds: [1] })],
    ['kNew shape', 'ERR_FMHA_SHAPE', /kNew/, () => decode(randomTensor(r, [2, 1, 2, 8]), cache, { kNew: randomTensor(r, [2, 2, 1, 8]), vNew: nt(2, 1).vNew })],
    ['kNew without vNew', 'ERR_FMHA_ARGUMENT', /vNew/, () => decode(randomTensor(r, [2, 1, 2, 8]), cache, { kNew: nt(2, 1).kNew })],
  ];
  for (const [name, code, re, fn] of cases) {
    assertFmhaError(await catchAsync(fn, name), code, [re], name);
    assert.equal([...cache.lengths], [18, 0], `${name}: lengths`);
    assert.is(cache.freePages, 1, `${name}: pages`);
  }
  // and the sync form
  assertFmhaError(catchSync(() => decodeSync(randomTensor(r, [1, 5, 2, 8]), cache, { ...nt(1, 5), seqIds: [1] })), 'ERR_FMHA_ARGUMENT', [/free page/], 'sync');
  assert.equal([...cache.lengths], [18, 0]);
  // one that fits takes the last page
  const q = randomTensor(r, [1, 4, 2, 8]), t = nt(1, 4);
  const res = decodeSync(q, cache, { ...t, seqIds: [1], returnLse: true });
  sh.append(t.kNew, t.vNew, [1]);
  assert.equal([...cache.lengths], [18, 4]);
  assert.is(cache.freePages, 0);
  check('fits', res, referenceOnShadow(q, sh, [1]), 'float32');
  cache.dispose();
});

dec('an appending decode aborted mid-flight gives its lengths and pages back; one that finished keeps them', async () => {
  const r = rng(41400);
  const { cache } = make({ batch: 2, capacity: 40000, kvHeads: 2, headDim: 64, pageSize: 64 });
  const fill = (x: number) => new Tensor('float32', new Float32Array(2 * 30000 * 2 * 64).fill(x), [2, 30000, 2, 64]);
  cache.append(fill(0.1), fill(-0.2));
  const free = cache.freePages;
  const ac = new AbortController();
  const p = decode(randomTensor(r, [2, 2, 8, 64]), cache,
    { kNew: randomTensor(r, [2, 2, 2, 64]), vNew: randomTensor(r, [2, 2, 2, 64]), signal: ac.signal, strategy: 'single' });
  assert.equal([...cache.lengths], [30002, 30002], 'reserved while in flight');
  setTimeout(() => ac.abort(), 0);
  const res = await p.then((x) => x, (e: unknown) => e);
  if (res instanceof Tensor) {
    assert.equal([...cache.lengths], [30002, 30002]);
  } else {
    assert.is((res as Error).name, 'AbortError', describe(res));
    assert.equal([...cache.lengths], [30000, 30000], 'rolled back');
    assert.is(cache.freePages, free, 'pages given back');
  }
  cache.dispose();
});

dec('decodeSync paged == contiguous for the same appended data (within float32 rounding)', () => {
  const r1 = rng(41500), r2 = rng(41500);
  const a = make(CONTIGUOUS), b = make({ ...PAGED, pageSize: 5 });
  for (const [r, { cache, sh }] of [[r1, a], [r2, b]] as const) {
    appendRandom(r, cache, sh, 77);
    appendRandom(r, cache, sh, 100, [1, 3]);
    appendRandom(r, cache, sh, 1, [2]);
  }
  const q = randomTensor(rng(41501), [4, 3, 6, 40]);
  for (const strategy of ['lean', 'split', 'single'] as const) {
    const ra = decodeSync(q, a.cache, { causal: true, strategy, returnLse: true });
    const rb = decodeSync(q, b.cache, { causal: true, strategy, returnLse: true });
    check(`contiguous ${strategy}`, ra, referenceOnShadow(q, a.sh, iota(4), { causal: true }), 'float32');
    check(`paged ${strategy}`, rb, referenceOnShadow(q, b.sh, iota(4), { causal: true }), 'float32');
    const e = rel(ra.out, rb.out);
    assert.ok(e < 1e-6, `${strategy}: paged vs contiguous ${e.toExponential(3)}`);
  }
  a.cache.dispose(); b.cache.dispose();
});

type Run = (q: Tensor, c: KVCache, o?: CacheDecodeOptions) => unknown;
const DECODE_ERRS: [string, FmhaErrorCode, RegExp[], (c: KVCache, run: Run) => unknown][] = [
  ['q batch ≠ cache batch (no seqIds)', 'ERR_FMHA_SHAPE', [/batch/, /\b4\b/], (c, run) => run(randomTensor(rng(1), [3, 6, 40]), c)],
  ['q batch ≠ seqIds.length', 'ERR_FMHA_SHAPE', [/seqIds/], (c, run) => run(randomTensor(rng(1), [3, 6, 40]), c, { seqIds: [0, 1] })],
  ['q head dim ≠ the cache\'s', 'ERR_FMHA_SHAPE', [/headDim/], (c, run) => run(randomTensor(rng(1), [4, 6, 24]), c)],
  ['Hq % kvHeads ≠ 0', 'ERR_FMHA_SHAPE', [/heads/], (c, run) => run(randomTensor(rng(1), [4, 3, 40]), c)],
  ['q of rank 2', 'ERR_FMHA_SHAPE', [/\bq\b/], (c, run) => run(randomTensor(rng(1), [4, 40]), c)],
  ['q dtype ≠ the cache\'s', 'ERR_FMHA_DTYPE', [/dtype/], (c, run) => run(randomTensor(rng(1), [4, 6, 40], 'float16'), c)],
  ['a bad seq id', 'ERR_FMHA_ARGUMENT', [/seqIds/], (c, run) => run(randomTensor(rng(1), [1, 6, 40]), c, { seqIds: [9] })],
  ['duplicate seq ids', 'ERR_FMHA_ARGUMENT', [/seqIds/], (c, run) => run(randomTensor(rng(1), [2, 6, 40]), c, { seqIds: [1, 1] })],
  ['blockTable (a KVCache keeps its own)', 'ERR_FMHA_ARGUMENT', [/blockTable/], (c, run) => run(randomTensor(rng(1), [4, 6, 40]), c, { blockTable: new Int32Array(4) } as CacheDecodeOptions)],
  ['seqlensK', 'ERR_FMHA_ARGUMENT', [/seqlensK/], (c, run) => run(randomTensor(rng(1), [4, 6, 40]), c, { seqlensK: new Int32Array(4) } as CacheDecodeOptions)],
  ['bad strategy', 'ERR_FMHA_ARGUMENT', [/strategy/], (c, run) => run(randomTensor(rng(1), [4, 6, 40]), c, { strategy: 'x' as 'lean' })],
  ['backend cuda', 'ERR_FMHA_BACKEND', [/cuda/i], (c, run) => run(randomTensor(rng(1), [4, 6, 40]), c, { backend: 'cuda' })],
];
for (const [name, code, msg, fn] of DECODE_ERRS) {
  dec(`decode errors, ${code}: ${name} (sync throws; async rejects)`, async () => {
    const { cache } = make(CONTIGUOUS);
    assertFmhaError(catchSync(() => fn(cache, decodeSync)), code, msg, `sync: ${name}`);
    assertFmhaError(await catchAsync(() => fn(cache, decode) as Promise<unknown>, name), code, msg, `async: ${name}`);
    assert.equal([...cache.lengths], [0, 0, 0, 0]);
    cache.dispose();
  });
}

dec('a cache argument that is not a KVCache → ERR_FMHA_DTYPE (decode rejects, never throws)', async () => {
  const q = randomTensor(rng(41600), [1, 2, 8]);
  for (const bad of [{}, null, undefined, new Float32Array(4), { batch: 1 }]) {
    assertFmhaError(catchSync(() => decodeSync(q, bad as unknown as KVCache)), 'ERR_FMHA_DTYPE', [/KVCache/], `sync ${String(bad)}`);
    assertFmhaError(await catchAsync(() => decode(q, bad as unknown as KVCache), String(bad)), 'ERR_FMHA_DTYPE', [/KVCache/], `async ${String(bad)}`);
  }
});
dec.run();

// ---------------------------------------------------------------------------
const busy = suite('KVCache: cache busy while an async decode is in flight; dispose');

function busyCache(): { cache: KVCache; sh: Shadow; q: Tensor } {
  const { cache, sh } = make({ batch: 2, capacity: 3000, kvHeads: 2, headDim: 64, pageSize: 32 });
  appendRandom(rng(42000), cache, sh, 2000);
  return { cache, sh, q: randomTensor(rng(42001), [2, 4, 64]) };
}
const tok = (B: number, n = 1) => [randomTensor(rng(42002), [B, n, 2, 64]), randomTensor(rng(42003), [B, n, 2, 64])] as const;

busy('a reading decode in flight: append and reset throw ARGUMENT (busy), an appending decode rejects; a second reading decode runs; after it settles all work', async () => {
  const { cache, sh, q } = busyCache();
  const ref = referenceOnShadow(q, sh, [0, 1]);
  const p = decode(q, cache, { returnLse: true });
  const [k, v] = tok(2);
  assertFmhaError(catchSync(() => cache.append(k, v)), 'ERR_FMHA_ARGUMENT', [/busy/], 'append while in flight');
  assertFmhaError(catchSync(() => cache.reset(0)), 'ERR_FMHA_ARGUMENT', [/busy/], 'reset while in flight');
  const q4 = randomTensor(rng(42004), [2, 1, 4, 64]);
  assertFmhaError(await catchAsync(() => decode(q4, cache, { kNew: k, vNew: v }), 'appending decode'), 'ERR_FMHA_ARGUMENT', [/busy/], 'appending decode while in flight');
  assertFmhaError(catchSync(() => decodeSync(q4, cache, { kNew: k, vNew: v })), 'ERR_FMHA_ARGUMENT', [/busy/], 'appending decodeSync while in flight');
  // reading alongside is fine, sync or async
  const p2 = decode(q, cache, { returnLse: true });
  check('sync read alongside', decodeSync(q, cache, { returnLse: true }), ref, 'float32');
  assert.equal([...cache.lengths], [2000, 2000], 'nothing appended');
  check('in flight', await p, ref, 'float32');
  check('second in flight', await p2, ref, 'float32');
  // settled: everything works again
  cache.append(k, v); sh.append(k, v);
  cache.reset(1); sh.reset(1);
  const after = decodeSync(q4, cache, { kNew: k, vNew: v, returnLse: true });
  sh.append(k, v);
  check('after settling', after, referenceOnShadow(q4, sh, [0, 1]), 'float32');
  cache.dispose();
});

busy('an appending decode in flight: a reading decode, append and reset are refused too', async () => {
  const { cache, sh, q } = busyCache();
  const [k, v] = tok(2, 2);
  const q4 = randomTensor(rng(42100), [2, 2, 4, 64]);
  const p = decode(q4, cache, { kNew: k, vNew: v, causal: true, returnLse: true });
  assertFmhaError(await catchAsync(() => decode(q, cache), 'read'), 'ERR_FMHA_ARGUMENT', [/busy/], 'reading decode while appending');
  assertFmhaError(catchSync(() => decodeSync(q, cache)), 'ERR_FMHA_ARGUMENT', [/busy/], 'reading decodeSync while appending');
  assertFmhaError(catchSync(() => cache.append(k, v)), 'ERR_FMHA_ARGUMENT', [/busy/], 'append');
  assertFmhaError(catchSync(() => cache.reset(1)), 'ERR_FMHA_ARGUMENT', [/busy/], 'reset');
  const res = await p;
  sh.append(k, v);
  check('appending decode', res, referenceOnShadow(q4, sh, [0, 1], { causal: true }), 'float32');
  assert.equal([...cache.lengths], [2002, 2002]);
  check('read after', decodeSync(q, cache, { returnLse: true }), referenceOnShadow(q, sh, [0, 1]), 'float32');
  cache.dispose();
});

busy('a decode that failed validation leaves the cache not busy', async () => {
  const { cache, sh, q } = busyCache();
  await catchAsync(() => decode(q, cache, { strategy: 'bogus' as 'lean' }), 'bad strategy');
  await catchAsync(() => decode(randomTensor(rng(42200), [2, 1, 4, 64]), cache, { kNew: tok(2)[0], vNew: tok(3)[1] }), 'bad vNew');
  const [k, v] = tok(2);
  cache.append(k, v); sh.append(k, v);
  cache.reset(0); sh.reset(0);
  check('after failed calls', decodeSync(q, cache, { returnLse: true }), referenceOnShadow(q, sh, [0, 1]), 'float32');
  cache.dispose();
});

busy('dispose: idempotent; later use → ERR_FMHA_ARGUMENT (sync throws, async rejects); Symbol.dispose', async () => {
  const { cache, q } = busyCache();
  cache.dispose();
  cache.dispose();
  const [k, v] = tok(2);
  const uses: [string, () => unknown][] = [
    ['append', () => cache.append(k, v)],
    ['lengths', () => cache.lengths],
    ['freePages', () => cache.freePages],
    ['reset', () => cache.reset(0)],
    ['decodeSync', () => decodeSync(q, cache)],
  ];
  for (const [name, fn] of uses) assertFmhaError(catchSync(fn), 'ERR_FMHA_ARGUMENT', [/disposed/], `${name} after dispose`);
  assertFmhaError(await catchAsync(() => decode(q, cache), 'decode after dispose'), 'ERR_FMHA_ARGUMENT', [/disposed/], 'decode after dispose');
  const c2 = new KVCache({ batch: 1, capacity: 4, kvHeads: 1, headDim: 4 });
  c2[Symbol.dispose]();
  assertFmhaError(catchSync(() => c2.lengths), 'ERR_FMHA_ARGUMENT', [/disposed/], 'after Symbol.dispose');
  c2.dispose();
});

busy('dispose() while a decode is in flight: the decode still completes correctly (the memory lives until it settles)', async () => {
  const { cache, sh, q } = busyCache();
  const ref = referenceOnShadow(q, sh, [0, 1]);
  const p = decode(q, cache, { returnLse: true });
  cache.dispose();
  (globalThis as { gc?: () => void }).gc?.();
  check('in flight across dispose', await p, ref, 'float32');
  assertFmhaError(catchSync(() => cache.lengths), 'ERR_FMHA_ARGUMENT', [/disposed/], 'after');
});

busy('await cache[Symbol.asyncDispose]() waits for in-flight decodes, then disposes', async () => {
  const { cache, sh, q } = busyCache();
  const ref = referenceOnShadow(q, sh, [0, 1]);
  let settled = 0;
  const results: AttentionWithLse[] = [];
  const ps = [0, 1, 2].map(() => decode(q, cache, { returnLse: true }).then((x) => { settled++; results.push(x); }));
  await cache[Symbol.asyncDispose]();
  assert.is(settled, 3, 'every in-flight decode settled before asyncDispose resolved');
  for (const r of results) check('before asyncDispose', r, ref, 'float32');
  assertFmhaError(catchSync(() => cache.lengths), 'ERR_FMHA_ARGUMENT', [/disposed/], 'disposed afterwards');
  await Promise.all(ps);
  // a rejected in-flight decode does not make asyncDispose reject
  const { cache: c2, q: q2 } = busyCache();
  const bad = decode(q2, c2, { signal: AbortSignal.timeout(0) }).catch(() => 'rejected');
  await c2[Symbol.asyncDispose]();
  await bad;
  assertFmhaError(catchSync(() => c2.freePages), 'ERR_FMHA_ARGUMENT', [/disposed/], 'c2 disposed');
});
busy.run();

void product; void nanData; void FmhaError;
