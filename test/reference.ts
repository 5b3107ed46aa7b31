// A float64 reference for attention (DESIGN §3) and the numeric helpers the
// suites share. Pure JavaScript: nothing here loads the native addon, so the
// reference can be checked on its own (test/reference.test.ts) and its answers
// never depend on the code under test (16-bit values are decoded here, strides
// followed here).

export type DTypeName = 'float32' | 'float16' | 'bfloat16';

/** What the reference reads: a `Tensor` satisfies it, so does a plain object. */
export interface TensorLike {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly data: ArrayLike<number>;
  readonly strides?: readonly number[];
}

// ---------------------------------------------------------------------------
// float16 / bfloat16 <-> float64, written independently of native/core/dtype.h
// (value arithmetic, not bit tricks).

/** x rounded to an integer, ties to even. Exact for |x| < 2^52. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** floor(log2(a)) for a finite a > 0, exact (Math.log2 may be off by one near powers of two). */
export function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  return e;
}

/** The float16 value of a bit pattern. */
export function f16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const man = bits & 0x3ff;
  if (exp === 0x1f) return man === 0 ? sign * Infinity : NaN;
  if (exp === 0) return sign * man * 2 ** -24;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

/** The bfloat16 value of a bit pattern. */
export function bf16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 7) & 0xff;
  const man = bits & 0x7f;
  if (exp === 0xff) return man === 0 ? sign * Infinity : NaN;
  if (exp === 0) return sign * man * 2 ** -133;
  return sign * (1 + man / 128) * 2 ** (exp - 127);
}

/** Round a number (exactly as given) to float16, nearest even; returns the bit pattern. */
export function numberToF16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) {
    const m = roundHalfEven(a / 2 ** -24); // 0 ..= 1024; 1024 is the smallest normal, bits 0x0400
    return sign | m;
  }
  let e = exponentOf(a);
  let m = roundHalfEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) { m = 0; e++; }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | m;
}

/**
 * Round a float32 value to bfloat16, nearest even; returns the bit pattern.
 * (For a value that is not a float32 this rounds once, directly, which is what
 * "round to nearest even" means; fmha's input is always float32.)
 */
export function numberToBf16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7f80;
  if (a < 2 ** -126) {
    const m = roundHalfEven(a / 2 ** -133); // 0 ..= 128; 128 is the smallest normal, bits 0x0080
    return sign | m;
  }
  let e = exponentOf(a);
  let m = roundHalfEven((a / 2 ** e - 1) * 128);
  if (m === 128) { m = 0; e++; }
  if (e > 127) return sign | 0x7f80;
  return sign | ((e + 127) << 7) | m;
}

export function isNaN16(bits: number, dtype: 'float16' | 'bfloat16'): boolean {
  return dtype === 'float16'
    ? (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0
    : (bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0;
}

/** The value x takes once stored in dtype (float32 via Math.fround). */
export function roundToDtype(x: number, dtype: DTypeName): number {
  if (dtype === 'float32') return Math.fround(x);
  if (dtype === 'float16') return f16BitsToNumber(numberToF16Bits(Math.fround(x)));
  return bf16BitsToNumber(numberToBf16Bits(Math.fround(x)));
}

/** Encode numbers as a dtype's storage (Float32Array, or raw bits in a Uint16Array). */
export function encode(values: ArrayLike<number>, dtype: DTypeName): Float32Array | Uint16Array {
  if (dtype === 'float32') return Float32Array.from(values as ArrayLike<number>);
  const out = new Uint16Array(values.length);
  const enc = dtype === 'float16' ? numberToF16Bits : numberToBf16Bits;
  for (let i = 0; i < values.length; i++) out[i] = enc(Math.fround(values[i]!));
  return out;
}

/** Decode one stored element. */
export function decodeElement(data: ArrayLike<number>, i: number, dtype: string): number {
  const x = data[i]!;
  if (dtype === 'float32') return x;
  if (dtype === 'float16') return f16BitsToNumber(x);
  if (dtype === 'bfloat16') return bf16BitsToNumber(x);
  throw new Error(`reference: unknown dtype ${dtype}`);
}

export function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]!; }
  return s;
}

/** A contiguous float64 copy of a tensor's values in row-major order, strides followed. */
export function readValues(t: TensorLike): Float64Array {
  const shape = t.shape;
  const strides = t.strides ?? contiguousStrides(shape);
  const n = product(shape);
  const out = new Float64Array(n);
  if (n === 0) return out;
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let off = 0;
  for (let e = 0; e < n; e++) {
    out[e] = decodeElement(t.data, off, t.dtype);
    // increment the multi-index
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      off += strides[d]!;
      if (idx[d]! < shape[d]!) break;
      off -= strides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// The reference attention.

export interface RefOptions {
  causal?: boolean;
  scale?: number;
  window?: readonly [number, number] | readonly number[];
  softcap?: number;
  alibiSlopes?: ArrayLike<number>;
  seqlensK?: ArrayLike<number>;
  bias?: TensorLike;
}

export interface RefResult {
  /** [B, Sq, Hq, Dv] */
  out: Float64Array;
  outShape: number[];
  /** [B, Hq, Sq], natural log; −Infinity for rows that see no key. */
  lse: Float64Array;
  lseShape: number[];
  /** [B, Hq, Sq]: 1 where the row sees no key. */
  noKey: Uint8Array;
  /** Count of rows that see no key. */
  noKeyRows: number;
}

/**
 * Attention in float64 from the stored (dtype-rounded) inputs, DESIGN §3:
 * s = (q·k)·scale; softcap; ALiBi; bias; masks (causal bottom-right, window,
 * seqlensK); softmax over the visible keys; out = p·v; lse = log Σ exp(s).
 */
export function referenceAttention(q: TensorLike, k: TensorLike, v: TensorLike, opts: RefOptions = {}): RefResult {
  if (q.shape.length !== 4 || k.shape.length !== 4 || v.shape.length !== 4) throw new Error('reference: rank 4 tensors only');
  const [B, Sq, Hq, D] = q.shape as [number, number, number, number];
  const [Bk, Sk, Hkv, Dk] = k.shape as [number, number, number, number];
  const [Bv, Skv, Hkvv, Dv] = v.shape as [number, number, number, number];
  if (Bk !== B || Bv !== B || Skv !== Sk || Hkvv !== Hkv || Dk !== D || Hq % Hkv !== 0) {
    throw new Error(`reference: inconsistent shapes q${JSON.stringify(q.shape)} k${JSON.stringify(k.shape)} v${JSON.stringify(v.shape)}`);
  }
  const group = Hq / Hkv;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const causal = opts.causal ?? false;
  const [left, right] = (opts.window ?? [-1, -1]) as [number, number];
  const softcap = opts.softcap ?? 0;
  const slopes = opts.alibiSlopes;
  const seqlensK = opts.seqlensK;
  const qv = readValues(q), kv = readValues(k), vv = readValues(v);

  let bias: Float64Array | undefined;
  let biasSb = 0, biasSh = 0;
  if (opts.bias) {
    const bs = opts.bias.shape;
    if (bs.length !== 4 || bs[2] !== Sq || bs[3] !== Sk || (bs[0] !== 1 && bs[0] !== B) || (bs[1] !== 1 && bs[1] !== Hq)) {
      throw new Error(`reference: bias shape ${JSON.stringify(bs)} does not broadcast to [${B}, ${Hq}, ${Sq}, ${Sk}]`);
    }
    bias = readValues(opts.bias);
    biasSh = bs[1] === 1 ? 0 : Sq * Sk;
    biasSb = bs[0] === 1 ? 0 : bs[1]! * Sq * Sk;
  }

  const out = new Float64Array(B * Sq * Hq * Dv);
  const lse = new Float64Array(B * Hq * Sq);
  const noKey = new Uint8Array(B * Hq * Sq);
  let noKeyRows = 0;
  const s = new Float64Array(Sk);
  const vis = new Uint8Array(Sk);
  const acc = new Float64Array(Dv);
  const off = Sk - Sq;

  for (let b = 0; b < B; b++) {
    const kvLen = seqlensK ? seqlensK[b]! : Sk;
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / group);
      const slope = slopes ? slopes[h]! : 0;
      for (let i = 0; i < Sq; i++) {
        const qBase = ((b * Sq + i) * Hq + h) * D;
        let m = -Infinity;
        for (let j = 0; j < Sk; j++) {
          let visible = j < kvLen;
          if (causal && j > i + off) visible = false;
          if (left >= 0 && j < i + off - left) visible = false;
          if (right >= 0 && j > i + off + right) visible = false;
          vis[j] = 0;
          if (!visible) continue;
          const kBase = ((b * Sk + j) * Hkv + hk) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qv[qBase + d]! * kv[kBase + d]!;
          let x = dot * scale;
          if (softcap > 0) x = softcap * Math.tanh(x / softcap);
          if (slopes) x += -slope * Math.abs(i + off - j);
          if (bias) x += bias[b * biasSb + h * biasSh + i * Sk + j]!;
          if (x === -Infinity) continue; // a −Infinity bias entry masks the key
          s[j] = x;
          vis[j] = 1;
          if (x > m) m = x;
        }
        const row = (b * Hq + h) * Sq + i;
        const oBase = ((b * Sq + i) * Hq + h) * Dv;
        if (m === -Infinity) {
          lse[row] = -Infinity;
          noKey[row] = 1;
          noKeyRows++;
          continue; // out stays 0
        }
        acc.fill(0);
        let sum = 0;
        for (let j = 0; j < Sk; j++) {
          if (!vis[j]) continue;
          const p = Math.exp(s[j]! - m);
          sum += p;
          const vBase = ((b * Sk + j) * Hkv + hk) * Dv;
          for (let d = 0; d < Dv; d++) acc[d]! += p * vv[vBase + d]!;
        }
        for (let d = 0; d < Dv; d++) out[oBase + d] = acc[d]! / sum;
        lse[row] = m + Math.log(sum);
      }
    }
  }
  return { out, outShape: [B, Sq, Hq, Dv], lse, lseShape: [B, Hq, Sq], noKey, noKeyRows };
}

// ---------------------------------------------------------------------------
// Random inputs and comparisons.

/** mulberry32: a small, seeded, reproducible PRNG returning [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform in ±[lo, hi] with a random sign: never zero. */
export function randomNonZero(n: number, r: () => number, lo = 0.1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const mag = lo + (hi - lo) * r();
    out[i] = r() < 0.5 ? -mag : mag;
  }
  return out;
}

/** Standard normal (Box–Muller), scaled. */
export function randomNormal(n: number, r: () => number, sigma = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - r(), w = r();
    const rad = Math.sqrt(-2 * Math.log(u)) * sigma;
    out[i] = rad * Math.cos(2 * Math.PI * w);
    if (i + 1 < n) out[i + 1] = rad * Math.sin(2 * Math.PI * w);
  }
  return out;
}

/** ‖actual − expected‖_F / ‖expected‖_F; Infinity if actual holds a non-finite value; 0/0 → 0. */
export function relFrobenius(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`relFrobenius: lengths differ (${actual.length} vs ${expected.length})`);
  let num = 0, den = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (!Number.isFinite(a)) return Infinity;
    num += (a - e) * (a - e);
    den += e * e;
  }
  if (den === 0) return num === 0 ? 0 : Infinity;
  return Math.sqrt(num / den);
}

export interface LseCheck { ok: boolean; worst: number; index: number; message: string }

/** Every entry within tol·max(1, |expected|); −Infinity must match −Infinity exactly (both ways). */
export function compareLse(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): LseCheck {
  if (actual.length !== expected.length) {
    return { ok: false, worst: Infinity, index: -1, message: `lse length ${actual.length}, expected ${expected.length}` };
  }
  let worst = 0, index = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (e === -Infinity || a === -Infinity) {
      if (a !== e) return { ok: false, worst: Infinity, index: i, message: `lse[${i}] = ${a}, expected ${e}` };
      continue;
    }
    if (!Number.isFinite(a)) return { ok: false, worst: Infinity, index: i, message: `lse[${i}] = ${a}, expected ${e}` };
    const err = Math.abs(a - e) / Math.max(1, Math.abs(e));
    if (err > worst) { worst = err; index = i; }
  }
  const ok = worst <= tol;
  return {
    ok, worst, index,
    message: ok ? 'ok' : `lse[${index}] = ${actual[index]}, expected ${expected[index]} (relative error ${worst.toExponential(3)} > ${tol})`,
  };
}

/** DESIGN §3 accuracy bounds. */
export const OUT_TOL: Record<DTypeName, number> = { float32: 1e-5, float16: 2e-3, bfloat16: 1.6e-2 };
export const LSE_TOL: Record<DTypeName, number> = { float32: 1e-5, float16: 1e-2, bfloat16: 1e-2 };

/** Bitwise equality of two typed arrays (NaN payloads and ±0 distinguished). */
export function bitwiseEqual(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.byteLength !== b.byteLength) return false;
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Bit pattern of a float32 value (as an unsigned 32-bit integer). */
export function f32Bits(x: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setFloat32(0, x);
  return dv.getUint32(0);
}

/** The float32 with the given bit pattern. */
export function bitsToF32(bits: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, bits >>> 0);
  return dv.getFloat32(0);
}

// ---------------------------------------------------------------------------
// The varlen reference: referenceAttention per sequence, on slices.

export interface VarlenRefResult {
  /** [Tq, Hq, Dv]; rows past cuSeqlensQ[B] are 0 (what a new output holds). */
  out: Float64Array;
  outShape: number[];
  /** [Hq, Tq]; −Infinity for rows that see no key and rows past cuSeqlensQ[B]. */
  lse: Float64Array;
  lseShape: number[];
  /** [Hq, Tq]: 1 where the row sees no key (rows past cuSeqlensQ[B] included). */
  noKey: Uint8Array;
  noKeyRows: number;
}

/** Rows [r0, r1) of a [T, H, D] tensor as a [1, r1 − r0, H, D] one (values already decoded). */
function rowSlice(values: Float64Array, shape: readonly number[], r0: number, r1: number): TensorLike {
  const row = shape[1]! * shape[2]!;
  return { dtype: 'float32', shape: [1, r1 - r0, shape[1]!, shape[2]!], data: values.subarray(r0 * row, r1 * row) };
}

/**
 * Varlen attention (DESIGN §3) in float64: sequence b is query rows
 * [cuQ[b], cuQ[b+1]) of q [Tq, Hq, D] and key rows [cuK[b], cuK[b+1]) of k, v;
 * each is an independent referenceAttention with its own Sq and Sk.
 */
export function referenceVarlen(q: TensorLike, k: TensorLike, v: TensorLike, cuQ: ArrayLike<number>, cuK: ArrayLike<number>,
  opts: Omit<RefOptions, 'seqlensK' | 'bias'> = {}): VarlenRefResult {
  const [Tq, Hq] = q.shape as [number, number, number];
  const Dv = v.shape[2]!;
  const qv = readValues(q), kv = readValues(k), vv = readValues(v);
  const out = new Float64Array(Tq * Hq * Dv);
  const lse = new Float64Array(Hq * Tq).fill(-Infinity);
  const noKey = new Uint8Array(Hq * Tq).fill(1);
  const B = cuQ.length - 1;
  for (let b = 0; b < B; b++) {
    const q0 = cuQ[b]!, q1 = cuQ[b + 1]!;
    if (q1 === q0) continue;
    const r = referenceAttention(rowSlice(qv, q.shape, q0, q1), rowSlice(kv, k.shape, cuK[b]!, cuK[b + 1]!),
      rowSlice(vv, v.shape, cuK[b]!, cuK[b + 1]!), opts);
    out.set(r.out, q0 * Hq * Dv);
    for (let h = 0; h < Hq; h++) {
      for (let i = 0; i < q1 - q0; i++) {
        lse[h * Tq + q0 + i] = r.lse[h * (q1 - q0) + i]!;
        noKey[h * Tq + q0 + i] = r.noKey[h * (q1 - q0) + i]!;
      }
    }
  }
  let noKeyRows = 0;
  for (const x of noKey) noKeyRows += x;
  return { out, outShape: [Tq, Hq, Dv], lse, lseShape: [Hq, Tq], noKey, noKeyRows };
}

/** Prefix sums of lengths, starting at 0: FlashAttention's cu_seqlens. */
export function cuSeqlensOf(lengths: readonly number[]): Int32Array {
  const cu = new Int32Array(lengths.length + 1);
  for (let b = 0; b < lengths.length; b++) cu[b + 1] = cu[b]! + lengths[b]!;
  return cu;
}
