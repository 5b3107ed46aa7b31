// Helpers that need the package (Tensor, attention): random tensors, NaN-poisoned
// outputs, running a kernel in a chosen mode, and checking its answer against the
// float64 reference. The pure numeric helpers live in reference.ts.
import * as assert from 'uvu/assert';
import {
  Tensor, FmhaError, attention, attentionSync, vanillaAttention, vanillaAttentionSync,
  type AttentionOptions, type AttentionWithLse, type DType,
} from '../lib/index.js';
import {
  referenceAttention, readValues, relFrobenius, compareLse, product, randomNonZero, rng, cuSeqlensOf,
  OUT_TOL, LSE_TOL, type RefResult, type VarlenRefResult,
} from './reference.js';

export type Kind = 'fused' | 'vanilla';
export type Mode = 'sync' | 'async';
export const KINDS: readonly Kind[] = ['fused', 'vanilla'];

/** A tensor of random non-zero values (uniform in ±[lo, hi]), rounded to dtype by the package. */
export function randomTensor(r: () => number, shape: readonly number[], dtype: DType = 'float32', lo = 0.1, hi = 1): Tensor {
  return Tensor.fromFloat32(randomNonZero(product(shape), r, lo, hi), shape, dtype);
}

/** Random q, k, v for the usual [B, S, H, D] layout. */
export function randomQKV(
  seed: number,
  { B, Sq, Sk, Hq, Hkv = Hq, D, Dv = D, dtype = 'float32' }:
  { B: number; Sq: number; Sk: number; Hq: number; Hkv?: number; D: number; Dv?: number; dtype?: DType },
): { q: Tensor; k: Tensor; v: Tensor } {
  const r = rng(seed);
  return {
    q: randomTensor(r, [B, Sq, Hq, D], dtype),
    k: randomTensor(r, [B, Sk, Hkv, D], dtype),
    v: randomTensor(r, [B, Sk, Hkv, Dv], dtype),
  };
}

/** ALiBi's standard slopes 2^(−8(h+1)/H). */
export function alibi(H: number, scale = 1): Float32Array {
  return Float32Array.from({ length: H }, (_, h) => scale * 2 ** (-8 * (h + 1) / H));
}

/** The NaN bit pattern (or value) of each dtype. */
export function nanData(n: number, dtype: DType): Float32Array | Uint16Array {
  if (dtype === 'float32') return new Float32Array(n).fill(NaN);
  return new Uint16Array(n).fill(dtype === 'float16' ? 0x7e00 : 0x7fc0);
}

/** A tensor filled with NaN: as `out`, every element the kernel fails to write stays NaN. */
export function nanTensor(shape: readonly number[], dtype: DType = 'float32'): Tensor {
  return new Tensor(dtype, nanData(product(shape), dtype), shape);
}

/** Runs fused or vanilla attention, sync or async, always with returnLse. */
export async function run(kind: Kind, mode: Mode, q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Promise<AttentionWithLse> {
  const o = { ...opts, returnLse: true as const };
  if (kind === 'fused') return mode === 'sync' ? attentionSync(q, k, v, o) : attention(q, k, v, o);
  return mode === 'sync' ? vanillaAttentionSync(q, k, v, o) : vanillaAttention(q, k, v, o);
}

/** Runs without returnLse: the plain-Tensor overload. */
export async function runPlain(kind: Kind, mode: Mode, q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Promise<Tensor> {
  const o = { ...opts, returnLse: false as const };
  if (kind === 'fused') return mode === 'sync' ? attentionSync(q, k, v, o) : attention(q, k, v, o);
  return mode === 'sync' ? vanillaAttentionSync(q, k, v, o) : vanillaAttention(q, k, v, o);
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(3) : String(x);
}

/** Largest |a − e| and where, for messages. */
function worstElement(a: ArrayLike<number>, e: ArrayLike<number>): string {
  let w = -1, at = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Number.isNaN(a[i]!) ? Infinity : Math.abs(a[i]! - e[i]!);
    if (d > w) { w = d; at = i; }
  }
  return at < 0 ? '' : ` worst element [${at}]: got ${a[at]}, expected ${e[at]}`;
}

/**
 * Asserts that `res` is the attention of q, k, v under `opts` within DESIGN's
 * bounds for q's dtype: shape, dtype, relative Frobenius error of out, lse, and
 * rows that see no key (out exactly 0, lse −Infinity). Returns the reference.
 */
export function checkResult(label: string, res: { out: Tensor; lse?: Tensor }, q: Tensor, k: Tensor, v: Tensor,
  opts: AttentionOptions = {}, ref: RefResult = referenceAttention(q, k, v, opts)): RefResult {
  const dtype = q.dtype;
  assert.instance(res.out, Tensor, `${label}: out is a Tensor`);
  assert.equal([...res.out.shape], ref.outShape, `${label}: out.shape`);
  assert.is(res.out.dtype, dtype, `${label}: out.dtype`);
  assert.is(res.out.data.length, product(ref.outShape), `${label}: out.data.length`);
  const got = readValues(res.out);
  for (let i = 0; i < got.length; i++) {
    if (!Number.isFinite(got[i]!)) assert.unreachable(`${label}: out[${i}] = ${got[i]} (not written, or overflow)`);
  }
  const err = relFrobenius(got, ref.out);
  assert.ok(err < OUT_TOL[dtype], `${label}: relative Frobenius error ${fmt(err)} ≥ ${OUT_TOL[dtype]} (${dtype});${worstElement(got, ref.out)}`);

  // Rows that see no key: output exactly 0.
  if (ref.noKeyRows > 0) checkNoKeyRows(label, got, ref.noKey, ref.outShape as [number, number, number, number]);
  if (res.lse !== undefined) checkLse(label, res.lse, ref.lse, ref.lseShape, dtype);
  return ref;
}

/** Rows of out [B, Sq, Hq, Dv] that see no key (noKey[(b·Hq + h)·Sq + i]) must be exactly 0. */
export function checkNoKeyRows(label: string, got: ArrayLike<number>, noKey: ArrayLike<number | boolean>,
  [B, Sq, Hq, Dv]: readonly [number, number, number, number]): void {
  for (let b = 0; b < B; b++) for (let h = 0; h < Hq; h++) for (let i = 0; i < Sq; i++) {
    if (!noKey[(b * Hq + h) * Sq + i]) continue;
    const base = ((b * Sq + i) * Hq + h) * Dv;
    for (let d = 0; d < Dv; d++) {
      if (got[base + d] !== 0) assert.unreachable(`${label}: row (b=${b}, h=${h}, i=${i}) sees no key, out[..${d}] = ${got[base + d]}, expected exactly 0`);
    }
  }
}

/** lse is a float32 Tensor of `shape` within DESIGN's bound of `expected` (−Infinity entries exact). */
export function checkLse(label: string, lse: Tensor, expected: ArrayLike<number>, shape: readonly number[], dtype: DType): void {
  assert.instance(lse, Tensor, `${label}: lse is a Tensor`);
  assert.is(lse.dtype, 'float32', `${label}: lse.dtype`);
  assert.equal([...lse.shape], [...shape], `${label}: lse.shape`);
  const c = compareLse(readValues(lse), expected, LSE_TOL[dtype]);
  assert.ok(c.ok, `${label}: ${c.message}`);
}


/** Runs a kernel and checks it; returns the result. */
export async function runAndCheck(label: string, kind: Kind, mode: Mode, q: Tensor, k: Tensor, v: Tensor,
  opts: AttentionOptions = {}, ref?: RefResult): Promise<AttentionWithLse> {
  const res = await run(kind, mode, q, k, v, opts);
  checkResult(`${label} [${kind}/${mode}]`, res, q, k, v, opts, ref);
  return res;
}

/** A human-readable description of an error for assertion messages. */
export function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}${(err as { code?: string }).code ? ` ${(err as { code?: string }).code}` : ''}: ${err.message}`;
  return String(err);
}

/** Asserts err is an FmhaError with the code, and (optionally) a message matching every regex. */
export function assertFmhaError(err: unknown, code: string | readonly string[], message: readonly RegExp[], label: string): void {
  if (!(err instanceof FmhaError)) assert.unreachable(`${label}: expected FmhaError ${code}, got ${describe(err)}`);
  const e = err as FmhaError;
  assert.ok(e instanceof Error, `${label}: FmhaError extends Error`);
  if (typeof code === 'string') assert.is(e.code, code, `${label}: code (message: ${e.message})`);
  else assert.ok(code.includes(e.code), `${label}: code ${e.code} not one of ${code.join(', ')} (message: ${e.message})`);
  for (const re of message) assert.match(e.message, re, `${label}: message ${JSON.stringify(e.message)} should match ${re}`);
}

/** Calls fn, expecting a synchronous throw; returns what was thrown. */
export function catchSync(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return assert.unreachable('expected a synchronous throw, but the call returned');
}

/**
 * Calls fn (which must return a Promise and never throw synchronously), expecting
 * a rejection; returns the reason.
 */
export async function catchAsync(fn: () => Promise<unknown>, label = ''): Promise<unknown> {
  let p: Promise<unknown>;
  try {
    p = fn();
  } catch (err) {
    return assert.unreachable(`${label}: the Promise form threw synchronously (${describe(err)}); it must reject instead`);
  }
  assert.instance(p, Promise, `${label}: returns a Promise`);
  try {
    await p;
  } catch (err) {
    return err;
  }
  return assert.unreachable(`${label}: expected a rejection, but the Promise resolved`);
}

/** A packed varlen batch: q [Tq, Hq, D], k [Tk, Hkv, D], v [Tk, Hkv, Dv] and their cuSeqlens. */
export interface PackedBatch { q: Tensor; k: Tensor; v: Tensor; cuQ: Int32Array; cuK: Int32Array }

/** Random non-zero packed q, k, v for the given lengths; `extraQ`/`extraK` rows past the last sequence. */
export function randomPackedBatch(seed: number, { lq, lk = lq, Hq, Hkv = Hq, D, Dv = D, dtype = 'float32', extraQ = 0, extraK = 0 }:
  { lq: number[]; lk?: number[]; Hq: number; Hkv?: number; D: number; Dv?: number; dtype?: DType; extraQ?: number; extraK?: number }): PackedBatch {
  const r = rng(seed);
  const cuQ = cuSeqlensOf(lq), cuK = cuSeqlensOf(lk);
  const Tq = cuQ[lq.length]! + extraQ, Tk = cuK[lk.length]! + extraK;
  return { q: randomTensor(r, [Tq, Hq, D], dtype), k: randomTensor(r, [Tk, Hkv, D], dtype), v: randomTensor(r, [Tk, Hkv, Dv], dtype), cuQ, cuK };
}

/** A varlen result against its per-sequence reference: shape, dtype, every element written, relative
 *  Frobenius error, rows that see no key exactly 0, lse `[Hq, Tq]` with −Infinity where nothing is seen. */
export function checkVarlen(label: string, res: { out: Tensor; lse?: Tensor }, ref: VarlenRefResult, dtype: DType): void {
  assert.equal([...res.out.shape], ref.outShape, `${label}: out.shape`);
  assert.is(res.out.dtype, dtype, `${label}: out.dtype`);
  const got = readValues(res.out);
  for (let i = 0; i < got.length; i++) if (!Number.isFinite(got[i]!)) assert.unreachable(`${label}: out[${i}] = ${got[i]}`);
  const err = relFrobenius(got, ref.out);
  assert.ok(err < OUT_TOL[dtype], `${label}: relative Frobenius error ${err.toExponential(3)} ≥ ${OUT_TOL[dtype]}`);
  // Packed [Tq, Hq, Dv] is the padded layout with B = 1, and noKey [Hq, Tq] its [B, Hq, Sq].
  const [Tq, Hq, Dv] = ref.outShape as [number, number, number];
  checkNoKeyRows(label, got, ref.noKey, [1, Tq, Hq, Dv]);
  if (res.lse) checkLse(label, res.lse, ref.lse, ref.lseShape, dtype);
}
