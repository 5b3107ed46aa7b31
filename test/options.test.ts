// Every option of DESIGN §3 alone and combined, fused and vanilla, sync and
// async, against the float64 reference: causal (bottom-right, Sq ≠ Sk), scale,
// window, softcap, alibiSlopes, seqlensK, bias (broadcast dims, −Infinity,
// a fully masked row), returnLse, out. Rows that see no key: out 0, lse −Infinity.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, type AttentionOptions, type DType } from '../lib/index.js';
import { referenceAttention, rng, randomNormal, product, type RefResult } from './reference.js';
import { randomQKV, run, nanTensor, checkResult, alibi, KINDS } from './helpers.js';

interface Shape { B: number; Sq: number; Sk: number; Hq: number; Hkv?: number; D: number; Dv?: number }

const SQUARE: Shape = { B: 2, Sq: 37, Sk: 37, Hq: 2, D: 40 };
const WIDE: Shape = { B: 2, Sq: 20, Sk: 45, Hq: 2, D: 40 };  // Sq < Sk (prefill over a prefix)
const TALL: Shape = { B: 2, Sq: 45, Sk: 20, Hq: 2, D: 40 };  // Sq > Sk: the first rows see no key under causal
const SHAPES = { SQUARE, WIDE, TALL };

/**
 * A bias [bB, bH, Sq, Sk] of normal values (σ = 1) with ~10% −Infinity entries,
 * and row `fullRow` (in the first batch/head slice) entirely −Infinity.
 */
export function makeBias(seed: number, shape: [number, number, number, number], dtype: DType = 'float32', fullRow = 1): Tensor {
  const r = rng(seed);
  const vals = randomNormal(product(shape), r);
  for (let i = 0; i < vals.length; i++) if (r() < 0.1) vals[i] = -Infinity;
  const Sk = shape[3];
  if (fullRow >= 0 && fullRow < shape[2]) for (let j = 0; j < Sk; j++) vals[fullRow * Sk + j] = -Infinity;
  return Tensor.fromFloat32(vals, shape, dtype);
}

type OptFactory = (s: Shape) => AttentionOptions;
interface Case { name: string; shapes: (keyof typeof SHAPES)[]; opts: OptFactory; expectNoKey?: boolean }

const ALL: (keyof typeof SHAPES)[] = ['SQUARE', 'WIDE', 'TALL'];

const CASES: Case[] = [
  // alone
  { name: 'defaults', shapes: ALL, opts: () => ({}) },
  { name: 'causal', shapes: ['SQUARE', 'WIDE'], opts: () => ({ causal: true }) },
  { name: 'causal, Sq > Sk', shapes: ['TALL'], opts: () => ({ causal: true }), expectNoKey: true },
  { name: 'causal: false explicitly', shapes: ['SQUARE'], opts: () => ({ causal: false }) },
  { name: 'scale 0.3', shapes: ALL, opts: () => ({ scale: 0.3 }) },
  { name: 'scale 2.5', shapes: ['SQUARE'], opts: () => ({ scale: 2.5 }) },
  { name: 'scale 0 (uniform weights)', shapes: ['SQUARE'], opts: () => ({ scale: 0 }) },
  { name: 'scale −0.7', shapes: ['WIDE'], opts: () => ({ scale: -0.7 }) },
  { name: 'window [5, 0]', shapes: ALL, opts: () => ({ window: [5, 0] }) },
  { name: 'window [0, 0]', shapes: ['SQUARE', 'WIDE'], opts: () => ({ window: [0, 0] }) },
  { name: 'window [0, 0], Sq > Sk', shapes: ['TALL'], opts: () => ({ window: [0, 0] }), expectNoKey: true },
  { name: 'window [3, 7]', shapes: ALL, opts: () => ({ window: [3, 7] }) },
  { name: 'window [−1, 4]', shapes: ALL, opts: () => ({ window: [-1, 4] }) },
  { name: 'window [6, −1]', shapes: ALL, opts: () => ({ window: [6, -1] }) },
  { name: 'window [−1, −1] (explicit default)', shapes: ['SQUARE'], opts: () => ({ window: [-1, -1] }) },
  { name: 'window [1000, 1000] (wider than the keys)', shapes: ['WIDE'], opts: () => ({ window: [1000, 1000] }) },
  { name: 'window [2, 1] with the window left of every key for early rows', shapes: ['TALL'], opts: () => ({ window: [2, 1] }), expectNoKey: true },
  { name: 'softcap 0 (off)', shapes: ['SQUARE'], opts: () => ({ softcap: 0 }) },
  { name: 'softcap 3 with scale 2', shapes: ALL, opts: () => ({ softcap: 3, scale: 2 }) },
  { name: 'softcap 30', shapes: ['WIDE'], opts: () => ({ softcap: 30 }) },
  { name: 'softcap 0.5', shapes: ['SQUARE'], opts: () => ({ softcap: 0.5 }) },
  { name: 'alibiSlopes (standard)', shapes: ALL, opts: (s) => ({ alibiSlopes: alibi(s.Hq) }) },
  { name: 'alibiSlopes (steep, one zero)', shapes: ['SQUARE'], opts: () => ({ alibiSlopes: new Float32Array([3, 0]) }) },
  { name: 'seqlensK [Sk, 0]', shapes: ALL, opts: (s) => ({ seqlensK: new Int32Array([s.Sk, 0]) }), expectNoKey: true },
  { name: 'seqlensK [1, Sk − 3]', shapes: ALL, opts: (s) => ({ seqlensK: new Int32Array([1, s.Sk - 3]) }) },
  { name: 'bias [B, Hq, Sq, Sk] with −Infinity and a fully masked row', shapes: ALL, opts: (s) => ({ bias: makeBias(11, [s.B, s.Hq, s.Sq, s.Sk]) }), expectNoKey: true },
  { name: 'bias [1, Hq, Sq, Sk]', shapes: ALL, opts: (s) => ({ bias: makeBias(12, [1, s.Hq, s.Sq, s.Sk]) }), expectNoKey: true },
  { name: 'bias [B, 1, Sq, Sk]', shapes: ALL, opts: (s) => ({ bias: makeBias(13, [s.B, 1, s.Sq, s.Sk]) }), expectNoKey: true },
  { name: 'bias [1, 1, Sq, Sk]', shapes: ALL, opts: (s) => ({ bias: makeBias(14, [1, 1, s.Sq, s.Sk]) }), expectNoKey: true },
  { name: 'bias without −Infinity', shapes: ['SQUARE'], opts: (s) => ({ bias: Tensor.fromFloat32(randomNormal(s.B * s.Hq * s.Sq * s.Sk, rng(15), 3), [s.B, s.Hq, s.Sq, s.Sk]) }) },
  // combined
  { name: 'causal + window [8, −1] (local attention)', shapes: ALL, opts: () => ({ causal: true, window: [8, -1] }) },
  { name: 'causal + window [4, 3] (right bound clipped by causal)', shapes: ['SQUARE', 'WIDE'], opts: () => ({ causal: true, window: [4, 3] }) },
  { name: 'causal + alibiSlopes', shapes: ALL, opts: (s) => ({ causal: true, alibiSlopes: alibi(s.Hq) }) },
  { name: 'causal + seqlensK', shapes: ALL, opts: (s) => ({ causal: true, seqlensK: new Int32Array([s.Sk, Math.max(0, s.Sk - 9)]) }) },
  { name: 'softcap + alibiSlopes + bias (pipeline order)', shapes: ALL, opts: (s) => ({ softcap: 2, scale: 1.5, alibiSlopes: alibi(s.Hq, 4), bias: makeBias(16, [1, s.Hq, s.Sq, s.Sk], 'float32', -1) }) },
  { name: 'seqlensK + bias −Infinity', shapes: ['SQUARE', 'WIDE'], opts: (s) => ({ seqlensK: new Int32Array([5, s.Sk]), bias: makeBias(17, [s.B, 1, s.Sq, s.Sk]) }), expectNoKey: true },
  { name: 'window + seqlensK: window inside the padding sees no key', shapes: ['WIDE'], opts: (s) => ({ window: [0, 0], seqlensK: new Int32Array([s.Sk - s.Sq, s.Sk]) }), expectNoKey: true },
  {
    name: 'everything: causal, scale, window, softcap, alibiSlopes, seqlensK, bias', shapes: ALL,
    opts: (s) => ({
      causal: true, scale: 0.4, window: [11, 2], softcap: 5, alibiSlopes: alibi(s.Hq, 2),
      seqlensK: new Int32Array([s.Sk - 2, Math.ceil(s.Sk / 2)]), bias: makeBias(18, [s.B, s.Hq, s.Sq, s.Sk]),
    }),
  },
];

const opt = suite('options: each alone and combined, fused and vanilla, sync and async');
CASES.forEach((c, idx) => {
  for (const shapeName of c.shapes) {
    const shape = SHAPES[shapeName];
    opt(`${c.name} [${shapeName} Sq=${shape.Sq} Sk=${shape.Sk}]`, async () => {
      const { q, k, v } = randomQKV(5000 + idx, shape);
      const opts = c.opts(shape);
      const ref: RefResult = referenceAttention(q, k, v, opts);
      if (c.expectNoKey) assert.ok(ref.noKeyRows > 0, 'test setup: some rows must see no key');
      for (const kind of KINDS) {
        for (const mode of ['sync', 'async'] as const) {
          const res = await run(kind, mode, q, k, v, opts);
          checkResult(`${c.name} ${shapeName} [${kind}/${mode}]`, res, q, k, v, opts, ref);
        }
      }
    });
  }
});
opt.run();

// ---------------------------------------------------------------------------
const nokey = suite('options: rows that see no key (output exactly 0, lse −Infinity), into NaN-poisoned out');

const NOKEY: [string, Shape, OptFactory][] = [
  ['causal Sq = 9 > Sk = 4: rows 0..4', { B: 1, Sq: 9, Sk: 4, Hq: 2, D: 16 }, () => ({ causal: true })],
  ['Sk = 1, causal Sq = 3', { B: 2, Sq: 3, Sk: 1, Hq: 1, D: 8 }, () => ({ causal: true })],
  ['seqlensK all 0', { B: 2, Sq: 5, Sk: 6, Hq: 2, D: 16 }, () => ({ seqlensK: new Int32Array([0, 0]) })],
  ['bias all −Infinity', { B: 1, Sq: 4, Sk: 6, Hq: 2, D: 16 }, (s) => ({ bias: Tensor.fromFloat32(new Float32Array(s.Sq * s.Sk).fill(-Infinity), [1, 1, s.Sq, s.Sk]) })],
  ['window [0, 0] with Sq > Sk and seqlensK', { B: 2, Sq: 12, Sk: 5, Hq: 2, D: 16 }, () => ({ window: [0, 0], seqlensK: new Int32Array([5, 2]) })],
];
for (const [name, shape, f] of NOKEY) {
  nokey(name, async () => {
    const { q, k, v } = randomQKV(6000, shape);
    const opts = f(shape);
    const ref = referenceAttention(q, k, v, opts);
    assert.ok(ref.noKeyRows > 0, 'test setup');
    for (const kind of KINDS) {
      for (const mode of ['sync', 'async'] as const) {
        const out = nanTensor(ref.outShape);
        const res = await run(kind, mode, q, k, v, { ...opts, out });
        assert.ok(res.out === out);
        checkResult(`${name} [${kind}/${mode}]`, res, q, k, v, opts, ref);
        const lse = res.lse.data as Float32Array;
        for (let i = 0; i < ref.lse.length; i++) {
          if (ref.noKey[i]) assert.is(lse[i], -Infinity, `lse[${i}] is −Infinity`);
        }
      }
    }
  });
}
nokey.run();

// ---------------------------------------------------------------------------
const defaults = suite('options: defaults are what DESIGN says');

defaults('scale defaults to 1/√D; window to [−1, −1]; softcap to 0; causal to false', async () => {
  const s: Shape = { B: 1, Sq: 20, Sk: 30, Hq: 2, D: 48 };
  const { q, k, v } = randomQKV(6100, s);
  for (const kind of KINDS) {
    const a = await run(kind, 'sync', q, k, v, {});
    const b = await run(kind, 'sync', q, k, v, { scale: 1 / Math.sqrt(48), window: [-1, -1], softcap: 0, causal: false });
    assert.equal([...a.out.data], [...b.out.data], `${kind}: defaults`);
    checkResult(`${kind} defaults`, a, q, k, v, { scale: 1 / Math.sqrt(48) });
  }
});

defaults('undefined option values mean the default', async () => {
  const s: Shape = { B: 1, Sq: 10, Sk: 10, Hq: 1, D: 8 };
  const { q, k, v } = randomQKV(6101, s);
  for (const kind of KINDS) {
    const a = await run(kind, 'async', q, k, v, {
      causal: undefined, scale: undefined, window: undefined, softcap: undefined,
      alibiSlopes: undefined, seqlensK: undefined, bias: undefined, out: undefined, backend: undefined, signal: undefined,
    });
    checkResult(`${kind} undefined options`, a, q, k, v, {});
  }
});

defaults("backend 'cpu' and 'auto' on host tensors compute the same", async () => {
  const { q, k, v } = randomQKV(6102, { B: 1, Sq: 16, Sk: 16, Hq: 2, D: 32 });
  for (const kind of KINDS) {
    const a = await run(kind, 'async', q, k, v, { backend: 'cpu', causal: true });
    const b = await run(kind, 'async', q, k, v, { backend: 'auto', causal: true });
    checkResult(`${kind} cpu`, a, q, k, v, { causal: true });
    assert.equal([...a.out.data], [...b.out.data]);
  }
});
defaults.run();

// ---------------------------------------------------------------------------
const live = suite('options: arrays mutated while an async call runs');

live('seqlensK set out of range after the call started cannot widen the keys read (the binding copies it)', async () => {
  const shape = { B: 2, Sq: 300, Sk: 300, Hq: 2, D: 64 };
  const { q, k, v } = randomQKV(5900, shape);
  const seqlensK = new Int32Array([40, 7]);
  const ref = referenceAttention(q, k, v, { seqlensK: seqlensK.slice() });
  for (const kind of KINDS) {
    const lens = seqlensK.slice();
    const pending = run(kind, 'async', q, k, v, { seqlensK: lens });
    lens[0] = 1 << 30;  // past Sk: read in place, this would send the kernel beyond k's data
    lens[1] = 300;
    checkResult(`mutated seqlensK [${kind}]`, await pending, q, k, v, { seqlensK: seqlensK.slice() }, ref);
  }
});
live.run();
