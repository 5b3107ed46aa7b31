// Checks the float64 reference and the conversion helpers on hand-computable
// cases. Loads no addon: it runs before native/ builds.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  referenceAttention, readValues, relFrobenius, compareLse, rng, randomNonZero, randomNormal,
  f16BitsToNumber, bf16BitsToNumber, numberToF16Bits, numberToBf16Bits, isNaN16, roundToDtype,
  encode, f32Bits, bitsToF32, bitwiseEqual, exponentOf, roundHalfEven, type TensorLike,
} from './reference.js';

const T = (shape: number[], values: number[] | Float32Array, strides?: number[]): TensorLike =>
  ({ dtype: 'float32', shape, data: Float32Array.from(values), ...(strides ? { strides } : {}) });

const close = (a: number, b: number, tol = 1e-12, msg = '') =>
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${msg} ${a} vs ${b}`);

// ---------------------------------------------------------------------------
const conv = suite('reference: float16/bfloat16 conversions');

conv('known float16 bit patterns', () => {
  const cases: [number, number][] = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff],
    [2 ** -24, 0x0001], [2 ** -14, 0x0400], [1023 * 2 ** -24, 0x03ff], [Math.fround(0.1), 0x2e66],
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [1 / 3, 0x3555],
    // halfway cases: ties to even
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002],
    [2 ** -14 - 2 ** -25, 0x0400], [65520, 0x7c00], [65519.99, 0x7bff], [1e6, 0x7c00], [2 ** -26, 0],
  ];
  for (const [x, bits] of cases) assert.is(numberToF16Bits(x), bits, `f16(${x})`);
  assert.ok(isNaN16(numberToF16Bits(NaN), 'float16'));
});

conv('known bfloat16 bit patterns', () => {
  const cases: [number, number][] = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3f80], [-2, 0xc000], [Math.fround(0.1), 0x3dcd],
    [Infinity, 0x7f80], [-Infinity, 0xff80], [3.3895313892515355e38, 0x7f7f],
    [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [2 ** -133, 0x0001], [2 ** -134, 0x0000],
    [3 * 2 ** -134, 0x0002], [2 ** -126, 0x0080], [Math.fround(3.4028234663852886e38), 0x7f80],
  ];
  for (const [x, bits] of cases) assert.is(numberToBf16Bits(x), bits, `bf16(${x})`);
  assert.ok(isNaN16(numberToBf16Bits(NaN), 'bfloat16'));
});

conv('every float16 and bfloat16 pattern round-trips; midpoints tie to even', () => {
  for (const [dt, toN, toB, top] of [
    ['float16', f16BitsToNumber, numberToF16Bits, 0x7c00],
    ['bfloat16', bf16BitsToNumber, numberToBf16Bits, 0x7f80],
  ] as const) {
    for (let b = 0; b < 0x10000; b++) {
      if (isNaN16(b, dt)) { assert.ok(Number.isNaN(toN(b))); continue; }
      assert.is(toB(toN(b)), b, `${dt} ${b.toString(16)}`);
    }
    // positive finite neighbours a < c: the midpoint goes to the even pattern
    for (let b = 0; b < top; b++) {
      const a = toN(b), c = toN(b + 1);
      const mid = (a + c) / 2;
      if (dt === 'bfloat16' && Math.fround(mid) !== mid) continue; // not a float32: not an input fmha sees
      const even = b % 2 === 0 ? b : b + 1;
      assert.is(toB(mid), even, `${dt} midpoint after ${b.toString(16)}`);
    }
  }
});

conv('bfloat16 matches the classic bit formula on random float32', () => {
  const r = rng(7);
  for (let i = 0; i < 20000; i++) {
    const u = Math.floor(r() * 2 ** 32) >>> 0;
    const x = bitsToF32(u);
    if (Number.isNaN(x)) continue;
    const expect = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
    assert.is(numberToBf16Bits(x), expect, `bf16 of ${u.toString(16)}`);
  }
});

conv('float16 of random float32 is the nearest representable value', () => {
  const r = rng(8);
  for (let i = 0; i < 20000; i++) {
    const x = Math.fround((r() - 0.5) * 2 ** (Math.floor(r() * 44) - 26));
    const b = numberToF16Bits(x);
    const y = f16BitsToNumber(b);
    if (!Number.isFinite(y)) { assert.ok(Math.abs(x) >= 65520); continue; }
    // no other f16 is strictly nearer
    for (const nb of [b - 1, b + 1]) {
      if (nb < 0 || (nb & 0x7fff) >= 0x7c00) continue;
      const z = f16BitsToNumber(nb);
      if (Math.sign(z) !== Math.sign(y) && z !== 0) continue;
      assert.ok(Math.abs(x - y) <= Math.abs(x - z), `f16(${x}) = ${y}, but ${z} is nearer`);
    }
  }
});

conv('helpers: exponentOf, roundHalfEven, encode, roundToDtype, f32 bits', () => {
  assert.is(exponentOf(1), 0);
  assert.is(exponentOf(0.999999), -1);
  assert.is(exponentOf(2 ** 100), 100);
  assert.is(exponentOf(2 ** -1074), -1074);
  assert.is(roundHalfEven(2.5), 2);
  assert.is(roundHalfEven(3.5), 4);
  assert.is(roundHalfEven(-2.5), -2);
  assert.equal([...encode([1, -2], 'float16')], [0x3c00, 0xc000]);
  assert.is(roundToDtype(1 + 2 ** -9, 'bfloat16'), 1);
  assert.is(roundToDtype(0.1, 'float32'), Math.fround(0.1));
  assert.is(f32Bits(1), 0x3f800000);
  assert.is(bitsToF32(0xbf800000), -1);
  assert.ok(bitwiseEqual(new Float32Array([1, NaN]), new Float32Array([1, NaN])));
  assert.not.ok(bitwiseEqual(new Float32Array([0]), new Float32Array([-0])));
});

conv.run();

// ---------------------------------------------------------------------------
const ref = suite('reference: attention on hand-computed cases');

ref('two keys: softmax and lse', () => {
  const q = T([1, 1, 1, 1], [1]);
  const k = T([1, 2, 1, 1], [0, 1]);
  const v = T([1, 2, 1, 1], [2, 4]);
  const r = referenceAttention(q, k, v, { scale: 1 });
  const e = Math.E;
  close(r.out[0]!, (2 + 4 * e) / (1 + e));
  close(r.lse[0]!, Math.log(1 + e));
  assert.is(r.noKeyRows, 0);
  // default scale is 1/sqrt(D)
  const q4 = T([1, 1, 1, 4], [1, 1, 1, 1]);
  const k4 = T([1, 2, 1, 4], [0, 0, 0, 0, 1, 1, 1, 1]);
  const r4 = referenceAttention(q4, k4, v);
  close(r4.lse[0]!, Math.log(1 + Math.exp(4 / 2)));
});

ref('causal, bottom-right; Sq > Sk rows see no key', () => {
  const v = T([1, 2, 1, 1], [3, 5]);
  const k = T([1, 2, 1, 1], [1, 1]);
  const q = T([1, 2, 1, 1], [1, 1]);
  const r = referenceAttention(q, k, v, { causal: true, scale: 1 });
  close(r.out[0]!, 3); // row 0 sees key 0
  close(r.out[1]!, 4); // row 1 sees both equally
  close(r.lse[0]!, 1);
  close(r.lse[1]!, 1 + Math.log(2));
  // Sq = 3 > Sk = 1: rows 0 and 1 see no key, row 2 sees key 0
  const r2 = referenceAttention(T([1, 3, 1, 1], [1, 2, 3]), T([1, 1, 1, 1], [2]), T([1, 1, 1, 1], [7]), { causal: true, scale: 1 });
  assert.equal([...r2.out], [0, 0, 7]);
  assert.equal([...r2.lse], [-Infinity, -Infinity, 6]);
  assert.is(r2.noKeyRows, 2);
  // Sq = 1 < Sk = 3: the single row is the last one, sees every key
  const r3 = referenceAttention(T([1, 1, 1, 1], [0]), T([1, 3, 1, 1], [1, 1, 1]), T([1, 3, 1, 1], [1, 2, 6]), { causal: true });
  close(r3.out[0]!, 3);
});

ref('window [left, right] with the Sk − Sq offset', () => {
  // Sq = 2, Sk = 4: offset 2. window [0, 0] → row i sees only j = i + 2.
  const q = T([1, 2, 1, 1], [1, 1]);
  const k = T([1, 4, 1, 1], [1, 1, 1, 1]);
  const v = T([1, 4, 1, 1], [10, 20, 30, 40]);
  const r = referenceAttention(q, k, v, { window: [0, 0] });
  assert.equal([...r.out], [30, 40]);
  const r2 = referenceAttention(q, k, v, { window: [1, -1] }); // row 0: j ≥ 1, row 1: j ≥ 2
  close(r2.out[0]!, 30);
  close(r2.out[1]!, 35);
  const r3 = referenceAttention(q, k, v, { window: [-1, -1], causal: true }); // row 0: j ≤ 2
  close(r3.out[0]!, 20);
  const r4 = referenceAttention(q, k, v, { window: [-1, 0] }); // right 0 alone acts as causal
  assert.equal([...r4.out], [...r3.out]);
  // window fully outside the keys: Sq = 3 > Sk = 1, window [0, 0]: row i sees j = i − 2 only
  const r5 = referenceAttention(T([1, 3, 1, 1], [1, 1, 1]), T([1, 1, 1, 1], [1]), T([1, 1, 1, 1], [9]), { window: [0, 0] });
  assert.equal([...r5.out], [0, 0, 9]);
});

ref('softcap, ALiBi and bias, in that order', () => {
  // one key: lse equals the processed score
  const q = T([1, 1, 1, 1], [2]);
  const k = T([1, 1, 1, 1], [5]);
  const v = T([1, 1, 1, 1], [1]);
  const r = referenceAttention(q, k, v, { scale: 1, softcap: 4 });
  close(r.lse[0]!, 4 * Math.tanh(10 / 4));
  // ALiBi: Sq = 1, Sk = 3 → distances 2, 1, 0; softcap applies before ALiBi
  const k3 = T([1, 3, 1, 1], [1, 1, 1]);
  const v3 = T([1, 3, 1, 1], [1, 2, 3]);
  const slopes = new Float32Array([0.5]);
  const r2 = referenceAttention(T([1, 1, 1, 1], [1]), k3, v3, { scale: 1, alibiSlopes: slopes, softcap: 2 });
  const s0 = 2 * Math.tanh(0.5);
  const w = [Math.exp(s0 - 1), Math.exp(s0 - 0.5), Math.exp(s0)];
  const sum = w[0]! + w[1]! + w[2]!;
  close(r2.out[0]!, (w[0]! + 2 * w[1]! + 3 * w[2]!) / sum);
  close(r2.lse[0]!, Math.log(sum));
  // bias broadcast [1, 1, Sq, Sk] and −Infinity
  const bias = T([1, 1, 1, 3], [0, -Infinity, Math.log(2)]);
  const r3 = referenceAttention(T([1, 1, 1, 1], [0]), k3, v3, { bias });
  close(r3.out[0]!, (1 + 2 * 3) / 3, 1e-7); // log 2 stored as float32
  close(r3.lse[0]!, Math.log(3), 1e-7);
  const allMasked = T([1, 1, 1, 3], [-Infinity, -Infinity, -Infinity]);
  const r4 = referenceAttention(T([1, 1, 1, 1], [0]), k3, v3, { bias: allMasked });
  assert.equal([...r4.out], [0]);
  assert.equal([...r4.lse], [-Infinity]);
});

ref('seqlensK masks keys but keeps Sk in the alignment', () => {
  const q = T([2, 1, 1, 1], [0, 0]);
  const k = T([2, 3, 1, 1], [0, 0, 0, 0, 0, 0]);
  const v = T([2, 3, 1, 1], [1, 2, 3, 4, 5, 6]);
  const r = referenceAttention(q, k, v, { seqlensK: new Int32Array([2, 0]) });
  close(r.out[0]!, 1.5);
  assert.is(r.out[1], 0);
  assert.is(r.lse[1], -Infinity);
  // causal with Sq = 1: the query is aligned to j ≤ Sk − 1 = 2, not to seqlensK
  const r2 = referenceAttention(q, k, v, { seqlensK: new Int32Array([3, 3]), causal: true, window: [0, -1] });
  close(r2.out[0]!, 3);
  const r3 = referenceAttention(q, k, v, { seqlensK: new Int32Array([2, 3]), window: [0, -1] });
  assert.is(r3.out[0], 0); // only key 2 is in the window, and it is padding
});

ref('GQA equals MHA with repeated kv heads; Dv ≠ D; batches independent', () => {
  const r = rng(3);
  const B = 2, S = 5, Hq = 4, Hkv = 2, D = 3, Dv = 2;
  const q = T([B, S, Hq, D], randomNonZero(B * S * Hq * D, r));
  const k = T([B, S, Hkv, D], randomNonZero(B * S * Hkv * D, r));
  const v = T([B, S, Hkv, Dv], randomNonZero(B * S * Hkv * Dv, r));
  const rep = (t: TensorLike, Dx: number) => {
    const src = t.data, out = new Float32Array(B * S * Hq * Dx);
    for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let h = 0; h < Hq; h++) for (let d = 0; d < Dx; d++) {
      out[((b * S + s) * Hq + h) * Dx + d] = src[((b * S + s) * Hkv + Math.floor(h / 2)) * Dx + d]!;
    }
    return T([B, S, Hq, Dx], out);
  };
  const a = referenceAttention(q, k, v, { causal: true });
  const m = referenceAttention(q, rep(k, D), rep(v, Dv), { causal: true });
  assert.equal(a.outShape, [B, S, Hq, Dv]);
  assert.is(relFrobenius(a.out, m.out), 0);
  assert.equal([...a.lse], [...m.lse]);
  // a single batch computed alone matches its slice
  const q1 = T([1, S, Hq, D], (q.data as Float32Array).subarray(S * Hq * D));
  const k1 = T([1, S, Hkv, D], (k.data as Float32Array).subarray(S * Hkv * D));
  const v1 = T([1, S, Hkv, Dv], (v.data as Float32Array).subarray(S * Hkv * Dv));
  const one = referenceAttention(q1, k1, v1, { causal: true });
  assert.equal([...one.out], [...a.out.subarray(S * Hq * Dv)]);
});

ref('readValues follows strides; a −Infinity bias equals dropping the key', () => {
  // [2, 3] viewed transposed out of a [3, 2] buffer
  const t = T([2, 3], [1, 2, 3, 4, 5, 6], [1, 2]);
  assert.equal([...readValues(t)], [1, 3, 5, 2, 4, 6]);
  const f16: TensorLike = { dtype: 'float16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) };
  assert.equal([...readValues(f16)], [1, -2]);
  const r = rng(5);
  const q = T([1, 4, 1, 8], randomNormal(32, r));
  const k = T([1, 6, 1, 8], randomNormal(48, r));
  const v = T([1, 6, 1, 8], randomNormal(48, r));
  const bias = new Float32Array(24);
  for (let i = 0; i < 4; i++) bias[i * 6 + 5] = -Infinity;
  const a = referenceAttention(q, k, v, { bias: T([1, 1, 4, 6], bias) });
  const kk = T([1, 5, 1, 8], (k.data as Float32Array).subarray(0, 40));
  const vv = T([1, 5, 1, 8], (v.data as Float32Array).subarray(0, 40));
  const b = referenceAttention(q, kk, vv, { scale: 1 / Math.sqrt(8) });
  assert.ok(relFrobenius(a.out, b.out) < 1e-15);
  assert.ok(compareLse(a.lse, b.lse, 1e-15).ok);
});

ref('metrics: relFrobenius and compareLse', () => {
  assert.is(relFrobenius([1, 2], [1, 2]), 0);
  close(relFrobenius([1, 0], [0, 1]), Math.SQRT2);
  assert.is(relFrobenius([NaN], [1]), Infinity);
  assert.is(relFrobenius([0], [0]), 0);
  assert.is(relFrobenius([1e-30], [0]), Infinity);
  assert.ok(compareLse([-Infinity, 10.00001], [-Infinity, 10], 1e-5).ok);
  assert.not.ok(compareLse([-Infinity], [0], 1).ok);
  assert.not.ok(compareLse([0], [-Infinity], 1).ok);
  assert.not.ok(compareLse([NaN], [0], 1).ok);
  assert.not.ok(compareLse([0.5], [0.4], 1e-2).ok);
  assert.ok(compareLse([1000.5], [1000], 1e-3).ok); // relative to |lse| past 1
});

ref.run();
