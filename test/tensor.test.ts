// Tensor: wrapping without a copy, fromFloat32 / toFloat32 round trips, round to
// nearest even for float16 and bfloat16 checked against an independent
// converter (reference.ts), strided toFloat32. Constructor errors: errors.test.ts.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor } from '../lib/index.js';
import {
  numberToF16Bits, numberToBf16Bits, f16BitsToNumber, bf16BitsToNumber, isNaN16, readValues,
  rng, bitsToF32, contiguousStrides,
} from './reference.js';

const t = suite('Tensor: construction');

t('wraps the typed array without copying; shape is copied and frozen', () => {
  const data = new Float32Array([1, 2, 3, 4, 5, 6]);
  const shape = [2, 3];
  const x = new Tensor('float32', data, shape);
  assert.ok(x.data === data, 'data is the same object');
  assert.is(x.dtype, 'float32');
  assert.equal([...x.shape], [2, 3]);
  shape[0] = 7;
  assert.equal([...x.shape], [2, 3], 'the caller\'s shape array is not aliased');
  assert.ok(Object.isFrozen(x.shape));
  assert.is(x.size, 6);
  assert.is(x.strides, undefined);
  data[0] = 42;
  assert.is(x.toFloat32()[0], 42, 'reads the wrapped memory');
  const bits = new Uint16Array([0x3c00, 0x4000]);
  const h = new Tensor('float16', bits, [2]);
  assert.ok(h.data === bits);
  const b = new Tensor('bfloat16', new Uint16Array([0x3f80]), [1, 1, 1, 1]);
  assert.equal([...b.toFloat32()], [1]);
});

t('a view into a larger buffer (subarray) with strides', () => {
  const buf = new Float32Array(100).map((_, i) => i);
  const x = new Tensor('float32', buf.subarray(10), [3, 4], [20, 1]);
  assert.ok(x.data.buffer === buf.buffer, 'shares the buffer');
  assert.equal([...x.strides!], [20, 1]);
  assert.equal([...x.toFloat32()], [10, 11, 12, 13, 30, 31, 32, 33, 50, 51, 52, 53]);
  // strides with a last dim of size 1 may be anything there
  const y = new Tensor('float32', buf.subarray(5), [3, 1], [7, 3]);
  assert.equal([...y.toFloat32()], [5, 12, 19]);
});

t('empty tensors', () => {
  for (const shape of [[0], [0, 3], [2, 0, 4], [0, 0, 0, 0], [3, 5, 0, 8]]) {
    const x = new Tensor('float32', new Float32Array(0), shape);
    assert.is(x.size, 0);
    assert.is(x.toFloat32().length, 0);
    const h = Tensor.fromFloat32(new Float32Array(0), shape, 'float16');
    assert.is(h.data.length, 0);
    assert.equal([...h.shape], shape);
  }
  const scalar = new Tensor('float32', new Float32Array([3]), []);
  assert.is(scalar.size, 1);
});

t('a Float16Array is accepted and viewed as its bits (where the runtime has one)', () => {
  const F16 = (globalThis as unknown as { Float16Array?: new (n: number[]) => ArrayLike<number> & { buffer: ArrayBuffer; byteOffset: number; length: number; BYTES_PER_ELEMENT: 2 } }).Float16Array;
  if (!F16) return; // Node < 24 without --js-float16array: nothing to check
  const x = new Tensor('float16', new F16([1, -2, 0.5]), [3]);
  assert.instance(x.data, Uint16Array);
  assert.equal([...x.data], [0x3c00, 0xc000, 0x3800]);
  assert.equal([...x.toFloat32()], [1, -2, 0.5]);
});
t.run();

// ---------------------------------------------------------------------------
const conv = suite('Tensor: fromFloat32 / toFloat32');

/** Float32 values that exercise rounding: ties, overflow, subnormals, signed zero, NaN. */
function specialValues(): number[] {
  const v: number[] = [
    0, -0, 1, -1, 0.1, -0.1, 1 / 3, Math.PI, 65504, -65504, 65519, 65520, 65536, 1e10, -1e10,
    Infinity, -Infinity, NaN, -NaN,
    // float16 ties: 1 + 2^-11 → 1 (even), 1 + 3·2^-11 → 1 + 2^-9 (even), 2048 + 1 → 2048, 2048 + 3 → 2052
    1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), 2049, 2051, 1 + 2 ** -11 + 2 ** -20,
    // bfloat16 ties: 1 + 2^-8 → 1, 1 + 3·2^-8 → 1 + 2^-6, just above a tie
    1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, 256 + 1, 256 + 3,
    // float16 subnormals and the underflow ties
    2 ** -24, 2 ** -25, 3 * 2 ** -25, 2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -24, 2 ** -14 - 2 ** -25,
    1023 * 2 ** -24, 5 * 2 ** -25, -(3 * 2 ** -25), 6e-8, 6.1e-5,
    // float32 subnormals and tiny normals for bfloat16
    2 ** -126, 2 ** -127, 2 ** -133, 2 ** -134, 3 * 2 ** -134, 2 ** -149, 1.5 * 2 ** -126,
    // bfloat16 overflow: the largest finite, the tie to infinity, float32 max
    3.3895313892515355e38, bitsToF32(0x7f7f8000), bitsToF32(0x7f7f7fff), 3.4028234663852886e38,
  ];
  return v.map(Math.fround);
}

function randomF32(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // mostly spread over the exponents that matter, some raw bit patterns
    out[i] = r() < 0.7
      ? (r() - 0.5) * 2 ** (Math.floor(r() * 60) - 30)
      : bitsToF32(Math.floor(r() * 2 ** 32));
  }
  return out;
}

for (const dtype of ['float16', 'bfloat16'] as const) {
  const enc = dtype === 'float16' ? numberToF16Bits : numberToBf16Bits;
  const dec = dtype === 'float16' ? f16BitsToNumber : bf16BitsToNumber;

  const checkBits = (src: Float32Array, what: string) => {
    const x = Tensor.fromFloat32(src, [src.length], dtype);
    assert.is(x.dtype, dtype);
    assert.instance(x.data, Uint16Array);
    const back = x.toFloat32();
    assert.instance(back, Float32Array);
    for (let i = 0; i < src.length; i++) {
      const got = x.data[i]!;
      if (Number.isNaN(src[i]!)) {
        assert.ok(isNaN16(got, dtype), `${what}: ${dtype}(NaN) = 0x${got.toString(16)} is a NaN`);
        assert.ok(Number.isNaN(back[i]!), `${what}: toFloat32 of a NaN is NaN`);
        continue;
      }
      const want = enc(src[i]!);
      if (got !== want) {
        assert.unreachable(`${what}: ${dtype}(${src[i]}) = 0x${got.toString(16)}, expected 0x${want.toString(16)} (round to nearest even)`);
      }
      if (!Object.is(back[i], dec(want))) assert.unreachable(`${what}: toFloat32(0x${want.toString(16)}) = ${back[i]}, expected ${dec(want)}`);
    }
  };

  conv(`${dtype}: special values (ties to even, ±Infinity, NaN, subnormals, ±0, overflow)`, () => {
    checkBits(Float32Array.from(specialValues()), 'special');
  });

  conv(`${dtype}: 100000 random float32 values`, () => {
    checkBits(randomF32(100000, dtype === 'float16' ? 1 : 2), 'random');
  });

  conv(`${dtype}: every one of the 65536 bit patterns decodes exactly and re-encodes to itself`, () => {
    const bits = new Uint16Array(65536).map((_, i) => i);
    const x = new Tensor(dtype, bits, [256, 256]);
    const vals = x.toFloat32();
    for (let i = 0; i < 65536; i++) {
      if (isNaN16(i, dtype)) { assert.ok(Number.isNaN(vals[i]!), `0x${i.toString(16)} is NaN`); continue; }
      if (!Object.is(vals[i], dec(i))) assert.unreachable(`toFloat32(0x${i.toString(16)}) = ${vals[i]}, expected ${dec(i)}`);
    }
    const again = Tensor.fromFloat32(vals, [65536], dtype);
    for (let i = 0; i < 65536; i++) {
      if (isNaN16(i, dtype)) { assert.ok(isNaN16(again.data[i]!, dtype)); continue; }
      if (again.data[i] !== i) assert.unreachable(`round trip of 0x${i.toString(16)} gave 0x${again.data[i]!.toString(16)}`);
    }
  });

  conv(`${dtype}: every midpoint between neighbours rounds to the even one`, () => {
    const top = dtype === 'float16' ? 0x7c00 : 0x7f80;
    const mids: number[] = [], want: number[] = [];
    for (let b = 0; b < top; b += dtype === 'float16' ? 1 : 7) {
      const m = (dec(b) + dec(b + 1)) / 2;
      if (Math.fround(m) !== m) continue; // not a float32 (bfloat16 subnormal midpoints): not an input
      for (const sign of [1, -1]) { mids.push(sign * m); want.push((b % 2 === 0 ? b : b + 1) | (sign < 0 ? 0x8000 : 0)); }
    }
    const x = Tensor.fromFloat32(Float32Array.from(mids), [mids.length], dtype);
    for (let i = 0; i < mids.length; i++) {
      if (x.data[i] !== want[i]) assert.unreachable(`${dtype}(${mids[i]}) = 0x${x.data[i]!.toString(16)}, expected 0x${want[i]!.toString(16)}`);
    }
  });
}

conv('float32: fromFloat32 copies; toFloat32 is an exact copy (NaN, ±0, subnormals kept)', () => {
  const src = Float32Array.from(specialValues());
  const x = Tensor.fromFloat32(src, [src.length]);
  assert.is(x.dtype, 'float32');
  assert.ok(x.data !== src, 'fromFloat32 copies');
  const back = x.toFloat32();
  assert.ok(back !== x.data, 'toFloat32 returns a copy');
  for (let i = 0; i < src.length; i++) assert.ok(Object.is(back[i], src[i]) || (Number.isNaN(back[i]!) && Number.isNaN(src[i]!)), `element ${i}`);
  src[0] = 99;
  assert.is.not(x.data[0], 99);
  back[1] = 99;
  assert.is.not(x.data[1], 99);
  const y = Tensor.fromFloat32([1, 2.5, -3], [3], 'float32');
  assert.equal([...y.toFloat32()], [1, 2.5, -3]);
  const z = Tensor.fromFloat32([1, 2.5, -3], [1, 3]); // default dtype
  assert.is(z.dtype, 'float32');
});

conv('fromFloat32 accepts a number[] and rounds through float32', () => {
  const x = Tensor.fromFloat32([0.1, 1 + 2 ** -11, 70000], [3], 'float16');
  assert.equal([...x.data], [numberToF16Bits(Math.fround(0.1)), 0x3c00, 0x7c00]);
});

conv('toFloat32 follows strides (permuted, offset, padded) for every dtype', () => {
  const r = rng(77);
  for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
    const shape = [3, 4, 5, 6];
    const n = 3 * 4 * 5 * 6;
    const base = Tensor.fromFloat32(Float32Array.from({ length: 2 * n + 50 }, () => r() * 4 - 2), [2 * n + 50], dtype);
    const views: [number, number[]][] = [
      [0, contiguousStrides(shape)],
      [7, [120, 6, 24, 1]],              // [3, 5, 4, 6] storage seen as [3, 4, 5, 6]
      [3, [240, 60, 12, 1]],             // every other row of 6
      [0, [0, 30, 6, 1]],                // broadcast over the first dim
      [11, [4 * 5 * 7, 5 * 7, 7, 1]],    // rows padded to 7
    ];
    for (const [off, strides] of views) {
      const v = new Tensor(dtype, base.data.subarray(off), shape, strides);
      const got = v.toFloat32();
      assert.is(got.length, n);
      const want = readValues(v);
      for (let i = 0; i < n; i++) {
        if (!Object.is(got[i], want[i])) assert.unreachable(`${dtype} strides ${strides} offset ${off}: [${i}] = ${got[i]}, expected ${want[i]}`);
      }
    }
  }
});
conv.run();
