// CUDA attention (fused and vanilla) against the float64 reference, the same
// comparisons as the CPU suites: every head dim with a fast kernel plus an odd
// one (general kernel), fp32/fp16/bf16, odd sizes, Dv ≠ D, GQA/MQA, every
// option alone and combined, lse, NaN-poisoned `out`, strided views, empty
// tensors, determinism. Each case runs through both ways into the kernels
// (host tensors with backend 'cuda', and DeviceTensors), sync and async.
// Runs only where backends().cuda.available (npm run test:gpu fails elsewhere).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, toDevice, attention, type AttentionOptions, type DType, type DeviceTensor } from '../lib/index.js';
import { referenceAttention, rng, randomNonZero, bitwiseEqual, product } from './reference.js';
import { randomQKV, randomTensor, nanTensor, checkResult, alibi, KINDS, type Kind, type Mode } from './helpers.js';
import { SIZE_CASES } from './core.js';
import { runCuda, runAndCheckCuda, makeBias, requireCuda, DevicePool, DTYPES, HEAD_DIMS, VIAS, type Via } from './gpu_helpers.js';

requireCuda();

interface Shape { B: number; Sq: number; Sk: number; Hq: number; Hkv?: number; D: number; Dv?: number }
const label = (c: Shape, extra = '') =>
  `B=${c.B} Sq=${c.Sq} Sk=${c.Sk} Hq=${c.Hq} Hkv=${c.Hkv ?? c.Hq} D=${c.D} Dv=${c.Dv ?? c.D}${extra}`;

// Cycles through (mode, via) so every case class covers all four combinations.
const COMBOS: [Mode, Via][] = [['async', 'device'], ['sync', 'host'], ['sync', 'device'], ['async', 'host']];
const combo = (i: number) => COMBOS[i % COMBOS.length]!;

// ---------------------------------------------------------------------------
const dims = suite('cuda: every head dim × dtype, causal and not');
let n = 0;
for (const dtype of DTYPES) {
  for (const D of HEAD_DIMS) {
    for (const causal of [false, true]) {
      const c: Shape = { B: 2, Sq: 131, Sk: 131, Hq: 4, Hkv: 2, D };
      const [mode, via] = combo(n++);
      dims(`${dtype} ${label(c, causal ? ' causal' : '')}`, async () => {
        const { q, k, v } = randomQKV(20000 + D + (causal ? 1 : 0), { ...c, dtype });
        await runAndCheckCuda(label(c), 'fused', mode, via, q, k, v, { causal });
      });
    }
  }
}
for (const dtype of DTYPES) {
  for (const D of [64, 128, 40]) {
    const c: Shape = { B: 1, Sq: 77, Sk: 190, Hq: 2, D };
    dims(`vanilla ${dtype} ${label(c, ' causal')}`, async () => {
      const { q, k, v } = randomQKV(20500 + D, { ...c, dtype });
      for (const via of VIAS) await runAndCheckCuda(label(c), 'vanilla', 'async', via, q, k, v, { causal: true });
    });
  }
}
dims.run();

// ---------------------------------------------------------------------------
const sizes = suite('cuda: odd sizes (the CPU suites\' SIZE_CASES)');
SIZE_CASES.forEach((c, idx) => {
  const dtype = DTYPES[idx % 3]!;
  for (const kind of KINDS) {
    const [mode, via] = combo(idx);
    sizes(`${kind} ${dtype} ${label(c, c.causal ? ' causal' : '')}`, async () => {
      const { q, k, v } = randomQKV(21000 + idx, { ...c, dtype });
      await runAndCheckCuda(label(c), kind, mode, via, q, k, v, c.causal ? { causal: true } : {});
    });
  }
});
sizes.run();

// ---------------------------------------------------------------------------
const shapes = suite('cuda: Dv ≠ D, GQA/MQA, long keys');
const shapeCases: [Shape, AttentionOptions][] = [
  [{ B: 1, Sq: 63, Sk: 63, Hq: 2, D: 64, Dv: 128 }, {}],
  [{ B: 2, Sq: 7, Sk: 129, Hq: 2, D: 40, Dv: 8 }, { causal: true }],
  [{ B: 1, Sq: 33, Sk: 33, Hq: 4, Hkv: 2, D: 192, Dv: 128 }, {}],
  [{ B: 1, Sq: 17, Sk: 17, Hq: 2, D: 1, Dv: 3 }, {}],
  [{ B: 2, Sq: 50, Sk: 70, Hq: 8, Hkv: 1, D: 128 }, { causal: true }],   // MQA
  [{ B: 2, Sq: 50, Sk: 70, Hq: 8, Hkv: 2, D: 64 }, {}],                  // GQA 4
  [{ B: 1, Sq: 40, Sk: 40, Hq: 6, Hkv: 3, D: 96 }, { causal: true }],    // GQA 2
  [{ B: 1, Sq: 64, Sk: 2500, Hq: 2, D: 128 }, {}],                       // many key tiles: online-softmax rescaling
  [{ B: 1, Sq: 300, Sk: 300, Hq: 2, D: 256 }, { causal: true }],
];
for (const dtype of DTYPES) {
  shapeCases.forEach(([c, opts], idx) => {
    for (const kind of KINDS) {
      const [mode, via] = combo(idx + (kind === 'vanilla' ? 1 : 0));
      shapes(`${kind} ${dtype} ${label(c)} ${JSON.stringify(opts)}`, async () => {
        const { q, k, v } = randomQKV(22000 + idx, { ...c, dtype });
        await runAndCheckCuda(label(c), kind, mode, via, q, k, v, opts);
      });
    }
  });
}
shapes.run();

// ---------------------------------------------------------------------------
const options = suite('cuda: every option alone and combined');
const SQUARE: Shape = { B: 2, Sq: 37, Sk: 37, Hq: 2, D: 64 };
const WIDE: Shape = { B: 2, Sq: 20, Sk: 45, Hq: 2, D: 64 };
const TALL: Shape = { B: 2, Sq: 45, Sk: 20, Hq: 2, D: 64 };
type OptFactory = (s: Shape, dtype: DType) => AttentionOptions;
const OPTION_CASES: [string, Shape[], OptFactory][] = [
  ['causal', [SQUARE, WIDE, TALL], () => ({ causal: true })],
  ['scale 0.3', [SQUARE], () => ({ scale: 0.3 })],
  ['scale 0 (uniform weights)', [SQUARE], () => ({ scale: 0 })],
  ['scale −0.7', [WIDE], () => ({ scale: -0.7 })],
  ['window [5, 0]', [SQUARE, WIDE, TALL], () => ({ window: [5, 0] })],
  ['window [0, 0]', [SQUARE, TALL], () => ({ window: [0, 0] })],
  ['window [3, 7]', [WIDE], () => ({ window: [3, 7] })],
  ['window [−1, 4]', [TALL], () => ({ window: [-1, 4] })],
  ['window [6, −1]', [SQUARE], () => ({ window: [6, -1] })],
  ['window [1000, 1000]', [WIDE], () => ({ window: [1000, 1000] })],
  ['softcap 3 with scale 2', [SQUARE, WIDE], () => ({ softcap: 3, scale: 2 })],
  ['softcap 30', [TALL], () => ({ softcap: 30 })],
  ['alibiSlopes', [SQUARE, WIDE, TALL], (s) => ({ alibiSlopes: alibi(s.Hq) })],
  ['seqlensK [Sk, 0]', [SQUARE, TALL], (s) => ({ seqlensK: new Int32Array([s.Sk, 0]) })],
  ['seqlensK [1, Sk − 3]', [WIDE], (s) => ({ seqlensK: new Int32Array([1, s.Sk - 3]) })],
  ['bias [B, Hq, Sq, Sk] with −Infinity and a fully masked row', [SQUARE, WIDE, TALL], (s, dt) => ({ bias: makeBias(11, [s.B, s.Hq, s.Sq, s.Sk], dt) })],
  ['bias [1, Hq, Sq, Sk]', [SQUARE], (s, dt) => ({ bias: makeBias(12, [1, s.Hq, s.Sq, s.Sk], dt) })],
  ['bias [B, 1, Sq, Sk]', [WIDE], (s, dt) => ({ bias: makeBias(13, [s.B, 1, s.Sq, s.Sk], dt) })],
  ['bias [1, 1, Sq, Sk]', [TALL], (s, dt) => ({ bias: makeBias(14, [1, 1, s.Sq, s.Sk], dt) })],
  ['causal + window [8, −1]', [SQUARE, WIDE, TALL], () => ({ causal: true, window: [8, -1] })],
  ['causal + alibiSlopes + seqlensK', [SQUARE, WIDE], (s) => ({ causal: true, alibiSlopes: alibi(s.Hq), seqlensK: new Int32Array([s.Sk, Math.max(0, s.Sk - 9)]) })],
  ['softcap + alibiSlopes + bias (pipeline order)', [SQUARE, TALL], (s, dt) => ({ softcap: 2, scale: 1.5, alibiSlopes: alibi(s.Hq, 4), bias: makeBias(16, [1, s.Hq, s.Sq, s.Sk], dt, -1) })],
  ['everything', [SQUARE, WIDE, TALL], (s, dt) => ({
    causal: true, scale: 0.4, window: [11, 2], softcap: 5, alibiSlopes: alibi(s.Hq, 2),
    seqlensK: new Int32Array([s.Sk - 2, Math.ceil(s.Sk / 2)]), bias: makeBias(18, [s.B, s.Hq, s.Sq, s.Sk], dt),
  })],
];
let m = 0;
for (const [name, list, make] of OPTION_CASES) {
  for (const s of list) {
    for (const dtype of ['float16', 'bfloat16', 'float32'] as DType[]) {
      const i = m++;
      const kind: Kind = i % 3 === 2 ? 'vanilla' : 'fused';
      const [mode, via] = combo(i);
      options(`${name} ${kind} ${dtype} ${label(s)}`, async () => {
        const { q, k, v } = randomQKV(23000 + i, { ...s, dtype });
        await runAndCheckCuda(name, kind, mode, via, q, k, v, make(s, dtype));
      });
    }
  }
}
options.run();

// ---------------------------------------------------------------------------
const outs = suite('cuda: out option, NaN-poisoned; empty tensors; determinism');

outs('every element of a NaN-poisoned out is written (host and device out), and the result is that object', async () => {
  const cases: [Shape, AttentionOptions][] = [
    [{ B: 2, Sq: 63, Sk: 63, Hq: 2, D: 64 }, {}],
    [{ B: 2, Sq: 70, Sk: 33, Hq: 4, Hkv: 2, D: 128 }, { causal: true }],   // the first 37 rows see no key
    [{ B: 2, Sq: 20, Sk: 50, Hq: 2, D: 40 }, { window: [3, 0], seqlensK: new Int32Array([50, 0]) }],
  ];
  for (const [idx, [c, opts]] of cases.entries()) {
    for (const dtype of DTYPES) {
      const { q, k, v } = randomQKV(24000 + idx, { ...c, dtype });
      const ref = referenceAttention(q, k, v, opts);
      for (const kind of KINDS) {
        for (const via of VIAS) {
          const out = nanTensor(ref.outShape, dtype);
          const res = await runCuda(kind, 'async', via, q, k, v, { ...opts, out });
          if (via === 'host') assert.ok(res.out === out, 'host: resolves to the given out');
          checkResult(`out ${kind}/${via}/${dtype}`, res, q, k, v, opts, ref);
        }
      }
    }
  }
});

outs('empty tensors: B, Sq or Sk = 0 (Sk = 0: out 0, lse −Infinity)', async () => {
  const cases: Shape[] = [
    { B: 0, Sq: 5, Sk: 5, Hq: 2, D: 64 },
    { B: 2, Sq: 0, Sk: 5, Hq: 2, D: 64 },
    { B: 2, Sq: 5, Sk: 0, Hq: 2, D: 64, Dv: 32 },
    { B: 2, Sq: 0, Sk: 0, Hq: 2, D: 128 },
  ];
  for (const c of cases) {
    const { q, k, v } = randomQKV(24100, { ...c, dtype: 'float16' });
    for (const kind of KINDS) for (const via of VIAS) for (const causal of [false, true]) {
      await runAndCheckCuda(label(c), kind, 'async', via, q, k, v, { causal });
      const out = nanTensor([c.B, c.Sq, c.Hq, c.Dv ?? c.D], 'float16');
      checkResult(`${label(c)} into NaN out`, await runCuda(kind, 'sync', via, q, k, v, { causal, out }), q, k, v, { causal });
    }
  }
});

outs('the same call twice is bitwise equal (out and lse), host and device', async () => {
  const { q, k, v } = randomQKV(24200, { B: 2, Sq: 300, Sk: 300, Hq: 4, Hkv: 2, D: 128, dtype: 'bfloat16' });
  const opts = { causal: true, alibiSlopes: new Float32Array([0.5, 0.25, 0.125, 0.0625]) };
  for (const kind of KINDS) {
    const a = await runCuda(kind, 'async', 'device', q, k, v, opts);
    const b = await runCuda(kind, 'sync', 'device', q, k, v, opts);
    const c = await runCuda(kind, 'async', 'host', q, k, v, opts);
    assert.ok(bitwiseEqual(a.out.data, b.out.data) && bitwiseEqual(a.out.data, c.out.data), `${kind}: out bitwise equal`);
    assert.ok(bitwiseEqual(a.lse.data, b.lse.data) && bitwiseEqual(a.lse.data, c.lse.data), `${kind}: lse bitwise equal`);
    checkResult(`determinism ${kind}`, a, q, k, v, opts);
  }
});

outs('large scores (|q·k| up to ~10^3): no overflow', async () => {
  const r = rng(24300);
  const B = 1, Sq = 50, Sk = 200, H = 2, D = 64;
  for (const dtype of DTYPES) {
    const q = Tensor.fromFloat32(randomNonZero(B * Sq * H * D, r, 1, 4), [B, Sq, H, D], dtype);
    const k = Tensor.fromFloat32(randomNonZero(B * Sk * H * D, r, 1, 4), [B, Sk, H, D], dtype);
    const v = randomTensor(r, [B, Sk, H, D], dtype);
    await runAndCheckCuda('large scores', 'fused', 'async', 'device', q, k, v, { scale: 1 });
    await runAndCheckCuda('large negative scale', 'vanilla', 'sync', 'host', q, k, v, { scale: -1, causal: true });
  }
});
outs.run();

// ---------------------------------------------------------------------------
const strided = suite('cuda: strided views');

strided('host views of a fused QKV [B, S, 3, H, D] with backend cuda', async () => {
  const B = 2, S = 65, H = 3, D = 64;
  for (const dtype of DTYPES) {
    const fused = Tensor.fromFloat32(randomNonZero(B * S * 3 * H * D, rng(25000)), [B * S * 3 * H * D], dtype);
    const strides = [S * 3 * H * D, 3 * H * D, D, 1];
    const view = (which: number) => new Tensor(dtype, fused.data.subarray(which * H * D), [B, S, H, D], strides);
    for (const kind of KINDS) await runAndCheckCuda(`fused QKV ${dtype}`, kind, 'async', 'host', view(0), view(1), view(2), { causal: true });
  }
});

strided('DeviceTensor views of a fused QKV on the device (no copy), and head-major k/v', async () => {
  const B = 2, S = 65, H = 4, D = 128;
  const pool = new DevicePool();
  try {
    for (const dtype of ['float16', 'bfloat16'] as DType[]) {
      const host = Tensor.fromFloat32(randomNonZero(B * S * 3 * H * D, rng(25100)), [B, S, 3, H, D], dtype);
      const qkv = await pool.up(host);
      const strides = [S * 3 * H * D, 3 * H * D, D, 1];
      const [dq, dk, dv] = [0, 1, 2].map((w) => pool.keep(qkv.view([B, S, H, D], strides, w * H * D)));
      const hostView = (w: number) => new Tensor(dtype, host.data.subarray(w * H * D), [B, S, H, D], strides);
      for (const causal of [false, true]) {
        const r = await attention(dq!, dk!, dv!, { causal, returnLse: true });
        pool.keep(r.out); pool.keep(r.lse);
        checkResult(`device views ${dtype} causal=${causal}`, { out: await r.out.toHost(), lse: await r.lse.toHost() },
          hostView(0), hostView(1), hostView(2), { causal });
      }
      // k and v stored head-major [B, H, S, D] on the device, viewed as [B, S, H, D]
      const kh = randomTensor(rng(25101), [B, H, S, D], dtype), vh = randomTensor(rng(25102), [B, H, S, D], dtype);
      const hm = [B * H * S * D / B, D, S * D, 1];
      const dkh = pool.keep((await pool.up(kh)).view([B, S, H, D], hm));
      const dvh = pool.keep((await pool.up(vh)).view([B, S, H, D], hm));
      const r = await attention(dq!, dkh, dvh, { window: [5, 3], returnLse: true });
      pool.keep(r.out); pool.keep(r.lse);
      checkResult(`head-major k/v ${dtype}`, { out: await r.out.toHost(), lse: await r.lse.toHost() }, hostView(0),
        new Tensor(dtype, kh.data, [B, S, H, D], hm), new Tensor(dtype, vh.data, [B, S, H, D], hm), { window: [5, 3] });
    }
  } finally {
    pool.dispose();
  }
});

strided('a batch-broadcast view (stride 0 on B) of k and v on the device', async () => {
  const B = 3, Sq = 9, Sk = 40, H = 2, D = 64;
  const r = rng(25200);
  const q = randomTensor(r, [B, Sq, H, D], 'float16');
  const kd = randomTensor(r, [Sk * H * D], 'float16'), vd = randomTensor(r, [Sk * H * D], 'float16');
  const pool = new DevicePool();
  try {
    const dk = pool.keep((await pool.up(kd)).view([B, Sk, H, D], [0, H * D, D, 1]));
    const dv = pool.keep((await pool.up(vd)).view([B, Sk, H, D], [0, H * D, D, 1]));
    const res = await attention(await pool.up(q), dk, dv, { causal: true, returnLse: true });
    pool.keep(res.out); pool.keep(res.lse);
    checkResult('stride-0 batch', { out: await res.out.toHost(), lse: await res.lse.toHost() }, q,
      new Tensor('float16', kd.data, [B, Sk, H, D], [0, H * D, D, 1]), new Tensor('float16', vd.data, [B, Sk, H, D], [0, H * D, D, 1]),
      { causal: true });
  } finally {
    pool.dispose();
  }
});
strided.run();

// ---------------------------------------------------------------------------
const concur = suite('cuda: async calls keep the event loop free and their inputs alive');

concur('many calls in flight at once, inputs disposed right after the call, all correct', async () => {
  const { q, k, v } = randomQKV(26000, { B: 2, Sq: 257, Sk: 257, Hq: 4, D: 128, dtype: 'float16' });
  const [dq, dk, dv] = [await toDevice(q), await toDevice(k), await toDevice(v)];
  const calls = Array.from({ length: 8 }, (_, i) => attention(dq, dk, dv, { causal: i % 2 === 1 }));
  dq.dispose(); dk.dispose(); dv.dispose();  // the calls in flight keep the memory
  const outs: DeviceTensor[] = await Promise.all(calls);
  for (const [i, o] of outs.entries()) {
    checkResult(`call ${i}`, { out: await o.toHost() }, q, k, v, { causal: i % 2 === 1 });
    o.dispose();
  }
});

concur('the event loop ticks while a long device call runs', async () => {
  const { q, k, v } = randomQKV(26100, { B: 4, Sq: 4096, Sk: 4096, Hq: 16, D: 128, dtype: 'float16' });
  const pool = new DevicePool();
  try {
    const [dq, dk, dv] = [await pool.up(q), await pool.up(k), await pool.up(v)];
    let ticks = 0;
    const timer = setInterval(() => { ticks++; }, 1);
    const t0 = performance.now();
    const outs = [];
    for (let i = 0; i < 20; i++) outs.push(pool.keep(await attention(dq, dk, dv, { causal: true })));
    const ms = performance.now() - t0;
    clearInterval(timer);
    assert.ok(ticks >= Math.min(5, ms / 4), `${ticks} ticks in ${ms.toFixed(0)} ms`);
    assert.is(product(outs[0]!.shape), 4 * 4096 * 16 * 128);
  } finally {
    pool.dispose();
  }
});
concur.run();
