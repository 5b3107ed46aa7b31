// Suites shared by the fused (attention.test.ts) and vanilla (vanilla.test.ts)
// kernels: odd sizes, Dv ≠ D, strided views, empty tensors, `out` (NaN-poisoned),
// determinism, large scores. Every result is checked against the float64 reference.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, type DType } from '../lib/index.js';
import { referenceAttention, rng, randomNonZero, bitwiseEqual, product, readValues } from './reference.js';
import { randomQKV, randomTensor, nanTensor, run, runPlain, runAndCheck, checkResult, type Kind, type Mode } from './helpers.js';

interface SizeCase { B: number; Sq: number; Sk: number; Hq: number; Hkv?: number; D: number; Dv?: number; causal?: boolean }

// S in {1, 7, 63, 129, 257, 1000}, D in {8, 40, 64, 80, 128, 256}; every S and every D
// appears, as Sq and as Sk, with and without causal, at a total cost of a few seconds.
export const SIZE_CASES: SizeCase[] = [
  { B: 1, Sq: 1, Sk: 1, Hq: 1, D: 8 },
  { B: 2, Sq: 7, Sk: 7, Hq: 3, D: 40 },
  { B: 2, Sq: 7, Sk: 7, Hq: 3, D: 40, causal: true },
  { B: 1, Sq: 1, Sk: 1000, Hq: 2, D: 64 },
  { B: 1, Sq: 1, Sk: 1000, Hq: 2, D: 64, causal: true },
  { B: 1, Sq: 63, Sk: 129, Hq: 2, D: 80 },
  { B: 1, Sq: 63, Sk: 129, Hq: 2, D: 80, causal: true },
  { B: 2, Sq: 129, Sk: 63, Hq: 2, D: 128 },
  { B: 2, Sq: 129, Sk: 63, Hq: 2, D: 128, causal: true },
  { B: 1, Sq: 257, Sk: 257, Hq: 2, D: 256 },
  { B: 1, Sq: 257, Sk: 257, Hq: 2, D: 256, causal: true },
  { B: 1, Sq: 1000, Sk: 1000, Hq: 2, D: 64 },
  { B: 1, Sq: 1000, Sk: 1000, Hq: 1, D: 64, causal: true },
  { B: 1, Sq: 1000, Sk: 257, Hq: 1, D: 40, causal: true },
  { B: 1, Sq: 7, Sk: 1000, Hq: 1, D: 256 },
  { B: 3, Sq: 63, Sk: 63, Hq: 4, D: 8, causal: true },
  { B: 1, Sq: 129, Sk: 1, Hq: 2, D: 128 },
  { B: 2, Sq: 257, Sk: 129, Hq: 1, D: 80 },
];

const label = (c: SizeCase) =>
  `B=${c.B} Sq=${c.Sq} Sk=${c.Sk} Hq=${c.Hq} Hkv=${c.Hkv ?? c.Hq} D=${c.D} Dv=${c.Dv ?? c.D}${c.causal ? ' causal' : ''}`;

export function coreSuites(kind: Kind, dtype: DType = 'float32'): void {
  const name = `${kind} ${dtype}`;

  // ---------------------------------------------------------------------------
  const sizes = suite(`${name}: odd sizes against the float64 reference`);
  SIZE_CASES.forEach((c, idx) => {
    const mode: Mode = idx % 2 === 0 ? 'sync' : 'async';
    sizes(label(c), async () => {
      const { q, k, v } = randomQKV(1000 + idx, { ...c, dtype });
      await runAndCheck(label(c), kind, mode, q, k, v, c.causal ? { causal: true } : {});
    });
  });
  sizes.run();

  // ---------------------------------------------------------------------------
  const dv = suite(`${name}: Dv ≠ D`);
  const dvCases: SizeCase[] = [
    { B: 1, Sq: 63, Sk: 63, Hq: 2, D: 64, Dv: 128 },
    { B: 2, Sq: 7, Sk: 129, Hq: 2, D: 40, Dv: 8, causal: true },
    { B: 1, Sq: 129, Sk: 129, Hq: 1, D: 256, Dv: 64, causal: true },
    { B: 1, Sq: 63, Sk: 257, Hq: 2, D: 8, Dv: 256 },
    { B: 1, Sq: 33, Sk: 33, Hq: 4, Hkv: 2, D: 192, Dv: 128 },
    { B: 1, Sq: 17, Sk: 17, Hq: 2, D: 1, Dv: 3 },
  ];
  dvCases.forEach((c, idx) => {
    dv(label(c), async () => {
      const { q, k, v } = randomQKV(2000 + idx, { ...c, dtype });
      await runAndCheck(label(c), kind, idx % 2 ? 'sync' : 'async', q, k, v, c.causal ? { causal: true } : {});
    });
  });
  dv.run();

  // ---------------------------------------------------------------------------
  const strided = suite(`${name}: strided views`);

  strided('q, k, v sliced from a fused QKV projection [B, S, 3, H, D]', async () => {
    const B = 2, S = 65, H = 3, D = 40;
    const r = rng(3001);
    const fused = Tensor.fromFloat32(randomNonZero(B * S * 3 * H * D, r), [B * S * 3 * H * D], dtype);
    const buf = fused.data;
    const strides = [S * 3 * H * D, 3 * H * D, D, 1];
    const view = (which: number) => new Tensor(dtype, buf.subarray(which * H * D), [B, S, H, D], strides);
    const q = view(0), k = view(1), v = view(2);
    for (const mode of ['sync', 'async'] as const) {
      await runAndCheck('fused QKV', kind, mode, q, k, v, {});
      await runAndCheck('fused QKV causal', kind, mode, q, k, v, { causal: true });
    }
    // the views are not copied: the same answer as contiguous copies
    const copy = (t: Tensor) => Tensor.fromFloat32(t.toFloat32(), t.shape, dtype);
    const a = await run(kind, 'sync', q, k, v, { causal: true });
    const b = await run(kind, 'sync', copy(q), copy(k), copy(v), { causal: true });
    assert.ok(bitwiseEqual(a.out.data, b.out.data), 'strided and contiguous inputs give bitwise-equal outputs');
  });

  strided('k and v stored [B, H, S, D] (head-major), q with padded rows', async () => {
    const B = 2, Sq = 31, Sk = 70, Hq = 4, Hkv = 2, D = 64, Dv = 24;
    const r = rng(3002);
    const kBuf = Tensor.fromFloat32(randomNonZero(B * Hkv * Sk * D, r), [B * Hkv * Sk * D], dtype).data;
    const vBuf = Tensor.fromFloat32(randomNonZero(B * Hkv * Sk * Dv, r), [B * Hkv * Sk * Dv], dtype).data;
    const k = new Tensor(dtype, kBuf, [B, Sk, Hkv, D], [Hkv * Sk * D, D, Sk * D, 1]);
    const v = new Tensor(dtype, vBuf, [B, Sk, Hkv, Dv], [Hkv * Sk * Dv, Dv, Sk * Dv, 1]);
    // q rows padded: each token's heads are followed by 8 unused elements, each head by 3
    const headStride = D + 3, tokStride = Hq * headStride + 8;
    const qLen = (B * Sq - 1) * tokStride + (Hq - 1) * headStride + D;
    const qBuf = Tensor.fromFloat32(randomNonZero(qLen, r), [qLen], dtype).data;
    const q = new Tensor(dtype, qBuf, [B, Sq, Hq, D], [Sq * tokStride, tokStride, headStride, 1]);
    await runAndCheck('head-major k/v', kind, 'async', q, k, v, { causal: true });
    await runAndCheck('head-major k/v', kind, 'sync', q, k, v, { window: [5, 3] });
  });

  strided('a batch-broadcast view (stride 0 on B) of k and v', async () => {
    // one shared prefix cache attended by every batch row: k's batch stride is 0
    const B = 3, Sq = 9, Sk = 40, H = 2, D = 32;
    const r = rng(3003);
    const q = randomTensor(r, [B, Sq, H, D], dtype);
    const k = new Tensor(dtype, randomTensor(r, [Sk * H * D], dtype).data, [B, Sk, H, D], [0, H * D, D, 1]);
    const v = new Tensor(dtype, randomTensor(r, [Sk * H * D], dtype).data, [B, Sk, H, D], [0, H * D, D, 1]);
    await runAndCheck('stride-0 batch', kind, 'async', q, k, v, { causal: true });
  });
  strided.run();

  // ---------------------------------------------------------------------------
  const empty = suite(`${name}: empty tensors`);
  const emptyCases: SizeCase[] = [
    { B: 0, Sq: 5, Sk: 5, Hq: 2, D: 16 },
    { B: 2, Sq: 0, Sk: 5, Hq: 2, D: 16 },
    { B: 2, Sq: 5, Sk: 0, Hq: 2, D: 16, Dv: 8 },
    { B: 2, Sq: 0, Sk: 0, Hq: 2, D: 16 },
    { B: 0, Sq: 0, Sk: 0, Hq: 4, Hkv: 2, D: 256 },
  ];
  for (const c of emptyCases) {
    for (const causal of [false, true]) {
      empty(`${label(c)}${causal ? ' causal' : ''}`, async () => {
        const { q, k, v } = randomQKV(3100, { ...c, dtype });
        for (const mode of ['sync', 'async'] as const) {
          const res = await runAndCheck(label(c), kind, mode, q, k, v, { causal });
          assert.is(res.out.data.length, product(res.out.shape));
          // Sk = 0: every row sees no key (checkResult asserts 0 and −Infinity)
          const out = nanTensor([c.B, c.Sq, c.Hq, c.Dv ?? c.D], dtype);
          const res2 = await run(kind, mode, q, k, v, { causal, out });
          assert.ok(res2.out === out, 'resolves to the given out');
          checkResult(`${label(c)} into NaN out`, res2, q, k, v, { causal });
        }
      });
    }
  }
  empty.run();

  // ---------------------------------------------------------------------------
  const outs = suite(`${name}: out option, NaN-poisoned`);
  const outCases: [SizeCase, object][] = [
    [{ B: 2, Sq: 63, Sk: 63, Hq: 2, D: 64 }, {}],
    [{ B: 1, Sq: 129, Sk: 129, Hq: 2, D: 80, Dv: 40 }, { causal: true }],
    [{ B: 2, Sq: 70, Sk: 33, Hq: 4, Hkv: 2, D: 40 }, { causal: true }], // first 37 rows see no key
    [{ B: 2, Sq: 20, Sk: 50, Hq: 2, D: 8 }, { window: [3, 0], seqlensK: new Int32Array([50, 0]) }],
  ];
  outCases.forEach(([c, opts], idx) => {
    outs(`${label(c)} ${JSON.stringify(opts)}`, async () => {
      const { q, k, v } = randomQKV(3200 + idx, { ...c, dtype });
      const ref = referenceAttention(q, k, v, opts);
      for (const mode of ['sync', 'async'] as const) {
        const out = nanTensor(ref.outShape, dtype);
        const data = out.data;
        const res = await run(kind, mode, q, k, v, { ...opts, out });
        assert.ok(res.out === out, `${mode}: with returnLse the result's out is the given object`);
        assert.ok(res.out.data === data, `${mode}: same data array`);
        checkResult(`out ${mode}`, res, q, k, v, opts, ref); // every element finite: all written
        const out2 = nanTensor(ref.outShape, dtype);
        const plain = await runPlain(kind, mode, q, k, v, { ...opts, out: out2 });
        assert.ok(plain === out2, `${mode}: without returnLse the call resolves to the given object`);
        assert.ok(bitwiseEqual(out.data, out2.data), `${mode}: same values with and without returnLse`);
      }
    });
  });
  outs.run();

  // ---------------------------------------------------------------------------
  const det = suite(`${name}: determinism, returnLse, large scores`);

  det('the same call twice is bitwise equal (out and lse)', async () => {
    const { q, k, v } = randomQKV(3300, { B: 2, Sq: 300, Sk: 300, Hq: 4, Hkv: 2, D: 64, dtype });
    const opts = { causal: true, alibiSlopes: new Float32Array([0.5, 0.25, 0.125, 0.0625]) };
    for (const mode of ['sync', 'async'] as const) {
      const a = await run(kind, mode, q, k, v, opts);
      const b = await run(kind, mode, q, k, v, opts);
      assert.ok(bitwiseEqual(a.out.data, b.out.data), `${mode}: out bitwise equal`);
      assert.ok(bitwiseEqual(a.lse.data, b.lse.data), `${mode}: lse bitwise equal`);
      if (mode === 'sync') checkResult('determinism', a, q, k, v, opts);
    }
  });

  det('returnLse: false returns the Tensor itself, equal to the returnLse out', async () => {
    const { q, k, v } = randomQKV(3301, { B: 1, Sq: 40, Sk: 50, Hq: 2, D: 40, dtype });
    for (const mode of ['sync', 'async'] as const) {
      const plain = await runPlain(kind, mode, q, k, v, { causal: true });
      assert.instance(plain, Tensor);
      const withLse = await run(kind, mode, q, k, v, { causal: true });
      assert.ok(bitwiseEqual(plain.data, withLse.out.data));
      checkResult('plain', { out: plain }, q, k, v, { causal: true });
    }
  });

  det('large scores (|q·k| up to ~10^3) need the running max: no overflow', async () => {
    const r = rng(3302);
    const B = 1, Sq = 50, Sk = 90, H = 2, D = 64;
    const q = Tensor.fromFloat32(randomNonZero(B * Sq * H * D, r, 1, 4), [B, Sq, H, D], dtype);
    const k = Tensor.fromFloat32(randomNonZero(B * Sk * H * D, r, 1, 4), [B, Sk, H, D], dtype);
    const v = randomTensor(r, [B, Sk, H, D], dtype);
    await runAndCheck('large scores', kind, 'sync', q, k, v, { scale: 1 });
    await runAndCheck('large negative scale', kind, 'async', q, k, v, { scale: -1, causal: true });
  });

  det('inputs are not modified', async () => {
    const { q, k, v } = randomQKV(3303, { B: 1, Sq: 33, Sk: 33, Hq: 2, D: 16, dtype });
    const before = [q, k, v].map((t) => readValues(t));
    await run(kind, 'async', q, k, v, { causal: true });
    await run(kind, 'sync', q, k, v, {});
    [q, k, v].forEach((t, i) => assert.equal([...readValues(t)], [...before[i]!], 'unchanged'));
  });
  det.run();
}
