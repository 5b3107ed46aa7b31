// GQA / MQA: Hq % Hkv === 0, query head h reads kv head ⌊h / (Hq / Hkv)⌋.
// Ratios 1, 2, 4, 8 (MQA), with causal, ALiBi (indexed by query head), Sq ≠ Sk.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor } from '../lib/index.js';
import { referenceAttention, relFrobenius, readValues, rng, randomNonZero } from './reference.js';
import { randomQKV, run, checkResult, KINDS } from './helpers.js';

const gqa = suite('GQA ratios against the reference, fused and vanilla');

const CASES: [number, number, number, number, number][] = [
  // [Hq, Hkv, Sq, Sk, D]
  [4, 4, 33, 33, 64],    // ratio 1 (MHA)
  [4, 2, 33, 70, 64],    // ratio 2
  [6, 3, 63, 63, 40],    // ratio 2, odd head counts
  [8, 2, 17, 129, 80],   // ratio 4
  [8, 1, 63, 63, 128],   // ratio 8 (MQA)
  [16, 2, 9, 100, 64],   // ratio 8
  [8, 1, 1, 257, 256],   // MQA decode-shaped
];

CASES.forEach(([Hq, Hkv, Sq, Sk, D], idx) => {
  gqa(`Hq=${Hq} Hkv=${Hkv} (ratio ${Hq / Hkv}) Sq=${Sq} Sk=${Sk} D=${D}`, async () => {
    const { q, k, v } = randomQKV(7000 + idx, { B: 2, Sq, Sk, Hq, Hkv, D });
    const optsList = [
      {},
      { causal: true },
      { causal: true, alibiSlopes: Float32Array.from({ length: Hq }, (_, h) => 0.05 * (h + 1)) },
    ];
    for (const opts of optsList) {
      const ref = referenceAttention(q, k, v, opts);
      for (const kind of KINDS) {
        const res = await run(kind, idx % 2 ? 'sync' : 'async', q, k, v, opts);
        checkResult(`GQA ${Hq}/${Hkv} ${JSON.stringify(Object.keys(opts))} [${kind}]`, res, q, k, v, opts, ref);
      }
    }
  });
});

gqa('the head mapping is ⌊h / (Hq/Hkv)⌋, not h mod Hkv', async () => {
  // kv head 0 has v ≡ +1, kv head 1 has v ≡ −1: query heads 0..3 must read +1, heads 4..7 −1.
  const B = 1, Sq = 3, Sk = 5, Hq = 8, Hkv = 2, D = 16;
  const r = rng(7100);
  const q = Tensor.fromFloat32(randomNonZero(B * Sq * Hq * D, r), [B, Sq, Hq, D]);
  const k = Tensor.fromFloat32(randomNonZero(B * Sk * Hkv * D, r), [B, Sk, Hkv, D]);
  const vv = new Float32Array(B * Sk * Hkv * D);
  for (let j = 0; j < Sk; j++) for (let d = 0; d < D; d++) { vv[(j * Hkv) * D + d] = 1; vv[(j * Hkv + 1) * D + d] = -1; }
  const v = Tensor.fromFloat32(vv, [B, Sk, Hkv, D]);
  for (const kind of KINDS) {
    const res = await run(kind, 'sync', q, k, v, {});
    const out = readValues(res.out);
    for (let i = 0; i < Sq; i++) for (let h = 0; h < Hq; h++) {
      const x = out[(i * Hq + h) * D]!;
      assert.ok(Math.abs(x - (h < 4 ? 1 : -1)) < 1e-6, `${kind}: head ${h} row ${i} reads kv head ${h < 4 ? 0 : 1}, got ${x}`);
    }
  }
});

gqa('GQA equals MHA on kv heads repeated Hq/Hkv times', async () => {
  const B = 2, Sq = 21, Sk = 34, Hq = 6, Hkv = 2, D = 32;
  const { q, k, v } = randomQKV(7101, { B, Sq, Sk, Hq, Hkv, D });
  const rep = (t: Tensor) => {
    const src = t.toFloat32(), out = new Float32Array(B * Sk * Hq * D);
    for (let b = 0; b < B; b++) for (let s = 0; s < Sk; s++) for (let h = 0; h < Hq; h++) for (let d = 0; d < D; d++) {
      out[((b * Sk + s) * Hq + h) * D + d] = src[((b * Sk + s) * Hkv + Math.floor(h / 3)) * D + d]!;
    }
    return Tensor.fromFloat32(out, [B, Sk, Hq, D]);
  };
  for (const kind of KINDS) {
    const a = await run(kind, 'async', q, k, v, { causal: true });
    const b = await run(kind, 'async', q, rep(k), rep(v), { causal: true });
    const err = relFrobenius(readValues(a.out), readValues(b.out));
    assert.ok(err < 1e-6, `${kind}: GQA vs repeated-kv MHA ${err}`);
  }
});
gqa.run();
