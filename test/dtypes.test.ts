// float16 and bfloat16 inputs: every shared suite (sizes, Dv ≠ D, strided views,
// empty, NaN-poisoned out, determinism) for fused and vanilla, plus the options
// in 16-bit (the bias in q's dtype), within DESIGN's bounds: relative Frobenius
// error < 2e-3 (float16), < 1.6e-2 (bfloat16); lse within 1e-2·max(1, |lse|).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, type DType } from '../lib/index.js';
import { referenceAttention, rng, randomNormal, product, OUT_TOL, relFrobenius, readValues } from './reference.js';
import { randomQKV, run, nanTensor, checkResult, KINDS } from './helpers.js';
import { coreSuites } from './core.js';

const DTYPES: DType[] = ['float16', 'bfloat16'];

for (const dtype of DTYPES) {
  coreSuites('fused', dtype);
  coreSuites('vanilla', dtype);
}

function bias16(seed: number, shape: [number, number, number, number], dtype: DType, fullRow = 2): Tensor {
  const r = rng(seed);
  const vals = randomNormal(product(shape), r);
  for (let i = 0; i < vals.length; i++) if (r() < 0.1) vals[i] = -Infinity;
  for (let j = 0; j < shape[3]; j++) vals[fullRow * shape[3] + j] = -Infinity;
  return Tensor.fromFloat32(vals, shape, dtype);
}

const opts16 = suite('16-bit: options, bias in q\'s dtype, output dtype');
for (const dtype of DTYPES) {
  const shapes = [
    { B: 2, Sq: 40, Sk: 40, Hq: 4, Hkv: 2, D: 64 },
    { B: 2, Sq: 25, Sk: 70, Hq: 2, D: 128, Dv: 64 },
    { B: 1, Sq: 70, Sk: 25, Hq: 2, D: 80 },
  ];
  shapes.forEach((s, idx) => {
    opts16(`${dtype} Sq=${s.Sq} Sk=${s.Sk} D=${s.D}: every option together`, async () => {
      const { q, k, v } = randomQKV(8000 + idx, { ...s, dtype });
      const list = [
        { causal: true },
        { window: [7, 3] as [number, number], softcap: 4, scale: 0.5 },
        { alibiSlopes: Float32Array.from({ length: s.Hq }, (_, h) => 0.1 * (h + 1)), seqlensK: new Int32Array(s.B).fill(s.Sk - 5) },
        { bias: bias16(8100 + idx, [1, s.Hq, s.Sq, s.Sk], dtype) },
        {
          causal: true, window: [20, 1] as [number, number], softcap: 10, scale: 0.2,
          alibiSlopes: Float32Array.from({ length: s.Hq }, (_, h) => 0.03 * (h + 1)),
          seqlensK: Int32Array.from({ length: s.B }, (_, b) => s.Sk - 3 * b), bias: bias16(8200 + idx, [s.B, 1, s.Sq, s.Sk], dtype),
        },
      ];
      for (const opts of list) {
        const ref = referenceAttention(q, k, v, opts);
        for (const kind of KINDS) {
          for (const mode of ['sync', 'async'] as const) {
            const out = nanTensor(ref.outShape, dtype);
            const res = await run(kind, mode, q, k, v, { ...opts, out });
            assert.ok(res.out === out);
            assert.is(res.out.dtype, dtype);
            assert.ok(res.out.data instanceof Uint16Array, 'float16/bfloat16 data is raw bits in a Uint16Array');
            assert.is(res.lse.dtype, 'float32');
            checkResult(`${dtype} ${Object.keys(opts).join('+')} [${kind}/${mode}]`, res, q, k, v, opts, ref);
          }
        }
      }
    });
  });
}

opts16('16-bit: long rows (Sk = 1000) stay within the bound', async () => {
  for (const dtype of DTYPES) {
    const { q, k, v } = randomQKV(8300, { B: 1, Sq: 64, Sk: 1000, Hq: 2, D: 64, dtype });
    const ref = referenceAttention(q, k, v, {});
    for (const kind of KINDS) {
      const res = await run(kind, 'async', q, k, v, {});
      const err = relFrobenius(readValues(res.out), ref.out);
      assert.ok(err < OUT_TOL[dtype], `${dtype} ${kind}: ${err}`);
    }
  }
});
opts16.run();
