// DESIGN §4: every realistic mistake gives an FmhaError with the right code and a
// message naming the argument; Promise forms reject (never throw synchronously),
// Sync forms throw; nothing crashes, nothing is written.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  Tensor, FmhaError, attention, attentionSync, vanillaAttention, vanillaAttentionSync, backends,
  type AttentionOptions, type FmhaErrorCode,
} from '../lib/index.js';
import { randomQKV, randomTensor, assertFmhaError, catchSync, catchAsync, checkResult, describe, KINDS, type Kind } from './helpers.js';
import { rng } from './reference.js';

const entry = new URL('../lib/index.js', import.meta.url).href;
const root = fileURLToPath(new URL('../../', import.meta.url));

// Valid base: B = 2, Sq = 5, Sk = 6, Hq = 4, Hkv = 2, D = 8.
const B = 2, Sq = 5, Sk = 6, Hq = 4, Hkv = 2, D = 8;
const r = rng(12000);
const f32 = (shape: number[]) => randomTensor(r, shape, 'float32');
const f16 = (shape: number[]) => randomTensor(r, shape, 'float16');
const base = () => ({ q: f32([B, Sq, Hq, D]), k: f32([B, Sk, Hkv, D]), v: f32([B, Sk, Hkv, D]) });

/** An object that looks like a Tensor (its prototype is Tensor's) but skipped the constructor's checks. */
function forge(dtype: string, data: unknown, shape: number[], strides?: number[]): Tensor {
  const t = Object.create(Tensor.prototype) as Record<string, unknown>;
  t.dtype = dtype;
  t.data = data;
  t.shape = shape;
  if (strides) t.strides = strides;
  return t as unknown as Tensor;
}

type Args = [Tensor, Tensor, Tensor, AttentionOptions];
interface ErrCase { name: string; code: FmhaErrorCode | FmhaErrorCode[]; msg: RegExp[]; make: () => Args; kinds?: readonly Kind[]; skip?: () => string | undefined }

const withQ = (q: unknown): Args => { const b = base(); return [q as Tensor, b.k, b.v, {}]; };
const withK = (k: unknown): Args => { const b = base(); return [b.q, k as Tensor, b.v, {}]; };
const withV = (v: unknown): Args => { const b = base(); return [b.q, b.k, v as Tensor, {}]; };
const withOpts = (opts: Record<string, unknown>): Args => { const b = base(); return [b.q, b.k, b.v, opts as AttentionOptions]; };

const CASES: ErrCase[] = [
  // ---- ERR_FMHA_SHAPE
  { name: 'q of rank 3 (forgot the batch dim)', code: 'ERR_FMHA_SHAPE', msg: [/\bq\b/], make: () => withQ(f32([Sq, Hq, D])) },
  { name: 'k of rank 5', code: 'ERR_FMHA_SHAPE', msg: [/\bk\b/], make: () => withK(f32([B, Sk, Hkv, D, 1])) },
  { name: 'v of rank 2', code: 'ERR_FMHA_SHAPE', msg: [/\bv\b/], make: () => withV(f32([B * Sk, Hkv * D])) },
  {
    name: 'Hq % Hkv ≠ 0 (4 query heads, 3 kv heads)', code: 'ERR_FMHA_SHAPE', msg: [/head|Hkv|Hq/i],
    make: () => { const b = base(); return [b.q, f32([B, Sk, 3, D]), f32([B, Sk, 3, D]), {}]; },
  },
  {
    name: 'head dim 512', code: 'ERR_FMHA_SHAPE', msg: [/512/, /256/],
    make: () => [f32([1, 2, 1, 512]), f32([1, 2, 1, 512]), f32([1, 2, 1, 512]), {}],
  },
  {
    name: 'v head dim 300 (Dv > 256)', code: 'ERR_FMHA_SHAPE', msg: [/\bv\b|Dv/, /300/],
    make: () => { const b = base(); return [b.q, b.k, f32([B, Sk, Hkv, 300]), {}]; },
  },
  {
    name: 'head dim 0', code: 'ERR_FMHA_SHAPE', msg: [/\bq\b|head|D\b/i],
    make: () => [f32([B, Sq, Hq, 0]), f32([B, Sk, Hkv, 0]), f32([B, Sk, Hkv, 8]), {}],
  },
  { name: 'q and k head dims differ (8 vs 16)', code: 'ERR_FMHA_SHAPE', msg: [/\bk\b/, /16/], make: () => withK(f32([B, Sk, Hkv, 16])) },
  { name: 'k and v sequence lengths differ', code: 'ERR_FMHA_SHAPE', msg: [/\bv\b/], make: () => withV(f32([B, Sk + 1, Hkv, D])) },
  { name: 'k and v head counts differ', code: 'ERR_FMHA_SHAPE', msg: [/\bv\b/], make: () => withV(f32([B, Sk, 1, D])) },
  { name: 'k batch differs from q', code: 'ERR_FMHA_SHAPE', msg: [/\bk\b|batch/], make: () => { const b = base(); return [b.q, f32([B + 1, Sk, Hkv, D]), f32([B + 1, Sk, Hkv, D]), {}]; } },
  { name: 'out.shape wrong (Dv doubled)', code: 'ERR_FMHA_SHAPE', msg: [/\bout\b/], make: () => withOpts({ out: f32([B, Sq, Hq, 2 * D]) }) },
  { name: 'out.shape wrong (rank 3)', code: 'ERR_FMHA_SHAPE', msg: [/\bout\b/], make: () => withOpts({ out: f32([B * Sq, Hq, D]) }) },
  { name: 'alibiSlopes.length 3 ≠ Hq 4', code: 'ERR_FMHA_SHAPE', msg: [/alibiSlopes/, /3/, /4/], make: () => withOpts({ alibiSlopes: new Float32Array(3) }) },
  { name: 'bias [B, Hq, Sq, Sk + 1] (wrong Sk)', code: 'ERR_FMHA_SHAPE', msg: [/bias/], make: () => withOpts({ bias: f32([B, Hq, Sq, Sk + 1]) }) },
  { name: 'bias [B + 1, Hq, Sq, Sk] (batch neither B nor 1)', code: 'ERR_FMHA_SHAPE', msg: [/bias/], make: () => withOpts({ bias: f32([B + 1, Hq, Sq, Sk]) }) },
  { name: 'bias [B, Hkv, Sq, Sk] (heads neither Hq nor 1)', code: 'ERR_FMHA_SHAPE', msg: [/bias/], make: () => withOpts({ bias: f32([B, Hkv, Sq, Sk]) }) },
  { name: 'bias of rank 3 [Hq, Sq, Sk]', code: 'ERR_FMHA_SHAPE', msg: [/bias/], make: () => withOpts({ bias: f32([Hq, Sq, Sk]) }) },
  { name: 'bias [B, Hq, Sk, Sq] (transposed)', code: 'ERR_FMHA_SHAPE', msg: [/bias/], make: () => withOpts({ bias: f32([B, Hq, Sk, Sq]) }) },
  { name: 'seqlensK.length 3 ≠ B 2', code: 'ERR_FMHA_SHAPE', msg: [/seqlensK/], make: () => withOpts({ seqlensK: new Int32Array([1, 2, 3]) }) },
  {
    name: 'q data shorter than its shape (a Tensor mutated after construction)', code: 'ERR_FMHA_SHAPE', msg: [/\bq\b/],
    make: () => withQ(forge('float32', new Float32Array(B * Sq * Hq * D - 1), [B, Sq, Hq, D])),
  },
  {
    name: 'v strides reaching past the data', code: 'ERR_FMHA_SHAPE', msg: [/\bv\b/],
    make: () => withV(forge('float32', new Float32Array(B * Sk * Hkv * D), [B, Sk, Hkv, D], [Sk * Hkv * D, Hkv * D + 1, D, 1])),
  },
  {
    name: 'k whose byte size overflows 64 bits', code: 'ERR_FMHA_SHAPE', msg: [/\bk\b/],
    make: () => withK(forge('float32', new Float32Array(16), [2 ** 40, 2 ** 40, Hkv, D])),
  },
  {
    // each stride a safe integer, but (2048 − 1) · 2^53 overflows int64: the reach check must not wrap
    name: 'k strides whose reach overflows 64 bits', code: 'ERR_FMHA_SHAPE', msg: [/\bk\b/],
    make: () => {
      const k = forge('float32', new Float32Array(Hkv * D), [1, 2048, Hkv, D], [0, 2 ** 53, D, 1]);
      const v = forge('float32', new Float32Array(Hkv * D), [1, 2048, Hkv, D], [0, 0, D, 1]);
      return [f32([1, Sq, Hq, D]), k, v, {}];
    },
  },
  {
    name: 'a stride above 2^53 (not a safe integer)', code: ['ERR_FMHA_SHAPE', 'ERR_FMHA_ARGUMENT'], msg: [/\bk\b/, /strides/],
    make: () => withK(forge('float32', new Float32Array(B * Sk * Hkv * D), [B, Sk, Hkv, D], [2 ** 62, 2 ** 62, D, 1])),
  },
  {
    name: 'bias data shorter than its shape', code: 'ERR_FMHA_SHAPE', msg: [/bias/],
    make: () => withOpts({ bias: forge('float32', new Float32Array(3), [B, Hq, Sq, Sk]) }),
  },
  // ---- ERR_FMHA_DTYPE
  { name: 'mixed dtypes: k float16, q float32', code: 'ERR_FMHA_DTYPE', msg: [/\bk\b/], make: () => withK(f16([B, Sk, Hkv, D])) },
  { name: 'mixed dtypes: v bfloat16', code: 'ERR_FMHA_DTYPE', msg: [/\bv\b/], make: () => withV(randomTensor(r, [B, Sk, Hkv, D], 'bfloat16')) },
  { name: 'out.dtype float16 ≠ q.dtype float32', code: 'ERR_FMHA_DTYPE', msg: [/\bout\b/], make: () => withOpts({ out: f16([B, Sq, Hq, D]) }) },
  { name: 'bias.dtype float16 ≠ q.dtype float32', code: 'ERR_FMHA_DTYPE', msg: [/bias/], make: () => withOpts({ bias: f16([B, Hq, Sq, Sk]) }) },
  { name: 'a Float32Array passed as q instead of a Tensor', code: 'ERR_FMHA_DTYPE', msg: [/\bq\b/], make: () => withQ(new Float32Array(B * Sq * Hq * D)) },
  { name: 'a plain object without dtype as k', code: 'ERR_FMHA_DTYPE', msg: [/\bk\b/], make: () => withK({ shape: [B, Sk, Hkv, D], data: new Float32Array(B * Sk * Hkv * D) }) },
  { name: 'undefined as v', code: 'ERR_FMHA_DTYPE', msg: [/\bv\b/], make: () => withV(undefined) },
  { name: 'null as q', code: 'ERR_FMHA_DTYPE', msg: [/\bq\b/], make: () => withQ(null) },
  { name: 'a number as k', code: 'ERR_FMHA_DTYPE', msg: [/\bk\b/], make: () => withK(42) },
  { name: 'a Float32Array as bias', code: 'ERR_FMHA_DTYPE', msg: [/bias/], make: () => withOpts({ bias: new Float32Array(B * Hq * Sq * Sk) }) },
  // DESIGN §4 puts "a non-Tensor argument" under DTYPE; the binding reads tensors field by field
  // (duck typing), so an object with a dtype but no shape is reported as a SHAPE problem. Either is fine.
  { name: 'a plain object { dtype } as bias', code: ['ERR_FMHA_DTYPE', 'ERR_FMHA_SHAPE'], msg: [/bias/], make: () => withOpts({ bias: { dtype: 'float32' } }) },
  { name: 'a Float32Array as out', code: 'ERR_FMHA_DTYPE', msg: [/\bout\b/], make: () => withOpts({ out: new Float32Array(B * Sq * Hq * D) }) },
  {
    name: 'q with Float64Array data', code: 'ERR_FMHA_DTYPE', msg: [/\bq\b/],
    make: () => withQ(forge('float32', new Float64Array(B * Sq * Hq * D), [B, Sq, Hq, D])),
  },
  {
    name: 'k float16 with Float32Array data', code: 'ERR_FMHA_DTYPE', msg: [/\bk\b/],
    make: () => [f16([B, Sq, Hq, D]), forge('float16', new Float32Array(B * Sk * Hkv * D), [B, Sk, Hkv, D]), f16([B, Sk, Hkv, D]), {}],
  },
  { name: "q with dtype 'float64'", code: 'ERR_FMHA_DTYPE', msg: [/\bq\b|float64/], make: () => withQ(forge('float64', new Float32Array(B * Sq * Hq * D), [B, Sq, Hq, D])) },
  { name: 'seqlensK a Uint32Array', code: 'ERR_FMHA_DTYPE', msg: [/seqlensK/], make: () => withOpts({ seqlensK: new Uint32Array([1, 2]) }) },
  { name: 'seqlensK a number[]', code: 'ERR_FMHA_DTYPE', msg: [/seqlensK/], make: () => withOpts({ seqlensK: [1, 2] }) },
  { name: 'seqlensK a Float32Array', code: 'ERR_FMHA_DTYPE', msg: [/seqlensK/], make: () => withOpts({ seqlensK: new Float32Array([1, 2]) }) },
  { name: 'alibiSlopes a Float64Array', code: 'ERR_FMHA_DTYPE', msg: [/alibiSlopes/], make: () => withOpts({ alibiSlopes: new Float64Array(Hq) }) },
  { name: 'alibiSlopes a number[]', code: 'ERR_FMHA_DTYPE', msg: [/alibiSlopes/], make: () => withOpts({ alibiSlopes: [0.1, 0.2, 0.3, 0.4] }) },
  // ---- ERR_FMHA_ARGUMENT
  { name: 'scale NaN', code: 'ERR_FMHA_ARGUMENT', msg: [/scale/], make: () => withOpts({ scale: NaN }) },
  { name: 'scale Infinity', code: 'ERR_FMHA_ARGUMENT', msg: [/scale/], make: () => withOpts({ scale: Infinity }) },
  { name: 'scale −Infinity', code: 'ERR_FMHA_ARGUMENT', msg: [/scale/], make: () => withOpts({ scale: -Infinity }) },
  { name: 'softcap negative', code: 'ERR_FMHA_ARGUMENT', msg: [/softcap/], make: () => withOpts({ softcap: -1 }) },
  { name: 'softcap NaN', code: 'ERR_FMHA_ARGUMENT', msg: [/softcap/], make: () => withOpts({ softcap: NaN }) },
  { name: 'softcap Infinity', code: 'ERR_FMHA_ARGUMENT', msg: [/softcap/], make: () => withOpts({ softcap: Infinity }) },
  { name: 'window [−2, 3]', code: 'ERR_FMHA_ARGUMENT', msg: [/window/, /-2/], make: () => withOpts({ window: [-2, 3] }) },
  { name: 'window [0, −5]', code: 'ERR_FMHA_ARGUMENT', msg: [/window/], make: () => withOpts({ window: [0, -5] }) },
  { name: 'window [NaN, 0]', code: 'ERR_FMHA_ARGUMENT', msg: [/window/], make: () => withOpts({ window: [NaN, 0] }) },
  { name: 'seqlensK entry −1', code: 'ERR_FMHA_ARGUMENT', msg: [/seqlensK/], make: () => withOpts({ seqlensK: new Int32Array([3, -1]) }) },
  { name: 'seqlensK entry > Sk', code: 'ERR_FMHA_ARGUMENT', msg: [/seqlensK/, /7/], make: () => withOpts({ seqlensK: new Int32Array([Sk + 1, 2]) }) },
  {
    name: 'out is q itself (in place)', code: 'ERR_FMHA_ARGUMENT', msg: [/\bout\b/],
    make: () => { const b = base(); return [b.q, b.k, b.v, { out: b.q }]; },
  },
  {
    name: "out overlapping q's buffer (a view shifted by one element)", code: 'ERR_FMHA_ARGUMENT', msg: [/\bout\b/],
    make: () => {
      const n = B * Sq * Hq * D;
      const buf = new Float32Array(n + 1).fill(0.5);
      const q = new Tensor('float32', buf.subarray(0, n), [B, Sq, Hq, D]);
      const out = new Tensor('float32', buf.subarray(1), [B, Sq, Hq, D]);
      const b = base();
      return [q, b.k, b.v, { out }];
    },
  },
  {
    name: 'out overlapping v (shared ArrayBuffer, different typed-array objects)', code: 'ERR_FMHA_ARGUMENT', msg: [/\bout\b/],
    make: () => {
      const shared = new ArrayBuffer(4 * 2 * B * Sq * Hq * D);
      const vData = new Float32Array(shared, 0, B * Sk * Hkv * D).fill(0.25);
      const outData = new Float32Array(shared, 4 * 8, B * Sq * Hq * D);
      const b = base();
      return [b.q, b.k, new Tensor('float32', vData, [B, Sk, Hkv, D]), { out: new Tensor('float32', outData, [B, Sq, Hq, D]) }];
    },
  },
  {
    // DESIGN §2: outputs are contiguous; a padded view as out must be refused, not written as if contiguous
    name: 'out a strided (row-padded) view', code: ['ERR_FMHA_ARGUMENT', 'ERR_FMHA_SHAPE'], msg: [/\bout\b/],
    make: () => withOpts({ out: new Tensor('float32', new Float32Array(B * Sq * Hq * (D + 4)).fill(NaN), [B, Sq, Hq, D], [Sq * Hq * (D + 4), Hq * (D + 4), D + 4, 1]) }),
  },
  // options of the wrong JavaScript type: DESIGN lists no code for these; either ARGUMENT or DTYPE names the option
  { name: "window 'abc'", code: ['ERR_FMHA_ARGUMENT', 'ERR_FMHA_DTYPE'], msg: [/window/], make: () => withOpts({ window: 'abc' }) },
  { name: 'window [1] (one entry)', code: ['ERR_FMHA_ARGUMENT', 'ERR_FMHA_SHAPE'], msg: [/window/], make: () => withOpts({ window: [1] }) },
  { name: "causal 'yes'", code: ['ERR_FMHA_ARGUMENT', 'ERR_FMHA_DTYPE'], msg: [/causal/], make: () => withOpts({ causal: 'yes' }) },
  { name: "scale '0.5' (a string)", code: ['ERR_FMHA_ARGUMENT', 'ERR_FMHA_DTYPE'], msg: [/scale/], make: () => withOpts({ scale: '0.5' }) },
  { name: 'out null', code: ['ERR_FMHA_ARGUMENT', 'ERR_FMHA_DTYPE'], msg: [/\bout\b/], make: () => withOpts({ out: null }) },
  { name: "backend 'gpu' (not a backend name)", code: 'ERR_FMHA_ARGUMENT', msg: [/backend/], make: () => withOpts({ backend: 'gpu' }) },
  // ---- ERR_FMHA_BACKEND
  {
    name: "backend 'cuda' without a GPU", code: 'ERR_FMHA_BACKEND', msg: [/cuda/i], make: () => withOpts({ backend: 'cuda' }),
    skip: () => (backends().cuda.available ? 'CUDA is available here' : undefined),
  },
];

const FN = {
  fused: { async: attention, sync: attentionSync },
  vanilla: { async: vanillaAttention, sync: vanillaAttentionSync },
} as const;

const errs = suite('errors: attention and vanillaAttention, Promise rejects and Sync throws');
for (const c of CASES) {
  errs(`${c.code}: ${c.name}`, async () => {
    const why = c.skip?.();
    if (why) { console.log(`    (skipped: ${why})`); return; }
    for (const kind of c.kinds ?? KINDS) {
      const [q, k, v, opts] = c.make();
      const outBefore = opts.out && opts.out instanceof Tensor ? Array.from(opts.out.data) : undefined;
      const aErr = await catchAsync(() => FN[kind].async(q, k, v, opts), `${kind} async`);
      assertFmhaError(aErr, c.code, c.msg, `${kind} async: ${c.name}`);
      const sErr = catchSync(() => FN[kind].sync(q, k, v, opts));
      assertFmhaError(sErr, c.code, c.msg, `${kind} sync: ${c.name}`);
      assert.is((sErr as Error).name, 'FmhaError');
      assert.ok(typeof (sErr as Error).stack === 'string');
      if (outBefore) {
        const after = Array.from((opts.out as Tensor).data);
        assert.ok(after.every((x, i) => Object.is(x, outBefore[i])), `${kind}: out was not written before validation failed`);
      }
    }
  });
}

errs('opts = null: no options, or an FmhaError; never a TypeError', async () => {
  const { q, k, v } = randomQKV(12200, { B, Sq, Sk, Hq, Hkv, D });
  for (const kind of KINDS) {
    let p: Promise<unknown> | undefined;
    try { p = FN[kind].async(q, k, v, null as unknown as AttentionOptions); } catch (err) { assert.unreachable(`${kind}: threw synchronously: ${describe(err)}`); }
    const a = await p!.then((x) => x, (e: unknown) => e);
    if (!(a instanceof Tensor)) assert.instance(a, FmhaError, `${kind} async with opts null: ${describe(a)}`);
    let s: unknown;
    try { s = FN[kind].sync(q, k, v, null as unknown as AttentionOptions); } catch (e) { s = e; }
    if (!(s instanceof Tensor)) assert.instance(s, FmhaError, `${kind} sync with opts null: ${describe(s)}`);
  }
});

errs('with returnLse: true the same validation applies', async () => {
  const [q, k, v] = withOpts({});
  const err = await catchAsync(() => attention(q, k, v, { returnLse: true, scale: NaN }));
  assertFmhaError(err, 'ERR_FMHA_ARGUMENT', [/scale/], 'returnLse + scale NaN');
});

errs('after all those errors, a valid call still computes correctly', async () => {
  const { q, k, v } = randomQKV(12100, { B, Sq, Sk, Hq, Hkv, D });
  for (const kind of KINDS) {
    const res = await FN[kind].async(q, k, v, { causal: true, returnLse: true });
    checkResult(`${kind} after errors`, res, q, k, v, { causal: true });
  }
});
errs.run();

// ---------------------------------------------------------------------------
const ctor = suite('errors: the Tensor constructor and fromFloat32 validate (and throw FmhaError)');

const CTOR: [string, FmhaErrorCode, RegExp[], () => unknown][] = [
  ['data shorter than the shape', 'ERR_FMHA_SHAPE', [/data|shape/], () => new Tensor('float32', new Float32Array(5), [2, 3])],
  ['data longer than a contiguous shape', 'ERR_FMHA_SHAPE', [/data|shape/], () => new Tensor('float32', new Float32Array(7), [2, 3])],
  ['float16 bits shorter than the shape', 'ERR_FMHA_SHAPE', [/data|shape/], () => new Tensor('float16', new Uint16Array(3), [4])],
  ['strides reaching past the data', 'ERR_FMHA_SHAPE', [/strides|data/], () => new Tensor('float32', new Float32Array(12), [3, 4], [5, 1])],
  ['strides of the wrong length', 'ERR_FMHA_SHAPE', [/strides/], () => new Tensor('float32', new Float32Array(12), [3, 4], [4])],
  ['a negative dimension', 'ERR_FMHA_SHAPE', [/shape/], () => new Tensor('float32', new Float32Array(0), [2, -3])],
  ['a fractional dimension', 'ERR_FMHA_SHAPE', [/shape/], () => new Tensor('float32', new Float32Array(3), [1.5, 2])],
  ['a NaN dimension', 'ERR_FMHA_SHAPE', [/shape/], () => new Tensor('float32', new Float32Array(3), [NaN, 3])],
  ['a shape whose element count overflows', 'ERR_FMHA_SHAPE', [/shape|data/], () => new Tensor('float32', new Float32Array(4), [2 ** 40, 2 ** 40, 2 ** 40])],
  ['strides whose reach overflows 64 bits', 'ERR_FMHA_SHAPE', [/strides|data/], () => new Tensor('float32', new Float32Array(4), [2049, 2], [2 ** 53, 1])],
  ['Float64Array data', 'ERR_FMHA_DTYPE', [/data|Float64Array/], () => new Tensor('float32', new Float64Array(6) as unknown as Float32Array, [2, 3])],
  ['float16 with Float32Array data', 'ERR_FMHA_DTYPE', [/data|float16/], () => new Tensor('float16', new Float32Array(6), [2, 3])],
  ['bfloat16 with Int16Array data', 'ERR_FMHA_DTYPE', [/data|bfloat16/], () => new Tensor('bfloat16', new Int16Array(6) as unknown as Uint16Array, [2, 3])],
  ['float32 with Uint16Array data', 'ERR_FMHA_DTYPE', [/data|float32/], () => new Tensor('float32', new Uint16Array(6), [2, 3])],
  ['a plain array as data', 'ERR_FMHA_DTYPE', [/data/], () => new Tensor('float32', [1, 2, 3] as unknown as Float32Array, [3])],
  ["dtype 'float64'", 'ERR_FMHA_DTYPE', [/dtype|float64/], () => new Tensor('float64' as 'float32', new Float32Array(6), [2, 3])],
  ["dtype 'int8'", 'ERR_FMHA_DTYPE', [/dtype|int8/], () => new Tensor('int8' as 'float32', new Float32Array(6), [2, 3])],
  ["fromFloat32 to dtype 'float64'", 'ERR_FMHA_DTYPE', [/dtype|float64/], () => Tensor.fromFloat32(new Float32Array(6), [2, 3], 'float64' as 'float32')],
  ['fromFloat32 with a shape that does not match', 'ERR_FMHA_SHAPE', [/data|shape/], () => Tensor.fromFloat32(new Float32Array(6), [2, 4], 'float16')],
];
for (const [name, code, msg, fn] of CTOR) {
  ctor(`${code}: ${name}`, () => {
    const err = catchSync(fn);
    assertFmhaError(err, code, msg, name);
  });
}

ctor('a last stride other than 1 (DESIGN §2: strides in elements, last one 1)', () => {
  const err = catchSync(() => new Tensor('float32', new Float32Array(24), [3, 4], [8, 2]));
  assert.instance(err, FmhaError, describe(err));
  assert.ok(['ERR_FMHA_SHAPE', 'ERR_FMHA_ARGUMENT'].includes((err as FmhaError).code), describe(err));
  assert.match((err as Error).message, /strides/);
});

ctor('negative strides that reach before the data are refused', () => {
  const err = catchSync(() => new Tensor('float32', new Float32Array(8), [2, 4], [-4, 1]));
  assert.instance(err, FmhaError, describe(err));
  assert.ok(['ERR_FMHA_SHAPE', 'ERR_FMHA_ARGUMENT'].includes((err as FmhaError).code), describe(err));
});
ctor.run();

// ---------------------------------------------------------------------------
const oom = suite('errors: ERR_FMHA_OOM under FMHA_MAX_SCRATCH_BYTES (read at load, so in a child process)');

oom('vanilla with a 4 MB score matrix and a 1 MB limit → ERR_FMHA_OOM; fused still runs', () => {
  const script = `
    const { Tensor, vanillaAttention, vanillaAttentionSync, attentionSync } = await import(${JSON.stringify(entry)});
    const mk = (shape) => Tensor.fromFloat32(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5), shape);
    const q = mk([1, 1024, 1, 8]), k = mk([1, 1024, 1, 8]), v = mk([1, 1024, 1, 8]);
    const info = (e) => ({ isFmha: e?.constructor?.name === 'FmhaError', name: e?.name, code: e?.code, message: e?.message });
    const res = {};
    try { vanillaAttentionSync(q, k, v); res.sync = 'resolved'; } catch (e) { res.sync = info(e); }
    let p;
    try { p = vanillaAttention(q, k, v); } catch (e) { res.threwSync = info(e); }
    try { await p; res.async = 'resolved'; } catch (e) { res.async = info(e); }
    const small = mk([1, 64, 1, 8]);
    try { const o = vanillaAttentionSync(small, small, small); res.small = o.shape.join(','); } catch (e) { res.small = info(e); }
    try { const o = attentionSync(q, k, v); res.fused = o.shape.join(','); } catch (e) { res.fused = info(e); }
    process.stdout.write(JSON.stringify(res));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root, env: { ...process.env, FMHA_MAX_SCRATCH_BYTES: '1000000' }, encoding: 'utf8', timeout: 120_000,
  });
  assert.is(r.status, 0, `child exited ${r.status} ${r.signal ?? ''}: ${r.stderr}`);
  const res = JSON.parse(r.stdout);
  assert.is(res.threwSync, undefined, 'vanillaAttention must not throw synchronously');
  for (const form of ['sync', 'async']) {
    const e = res[form];
    assert.type(e, 'object', `${form}: expected ERR_FMHA_OOM, got ${JSON.stringify(e)}`);
    assert.ok(e.isFmha && e.name === 'FmhaError', `${form}: ${JSON.stringify(e)}`);
    assert.is(e.code, 'ERR_FMHA_OOM', `${form}: ${JSON.stringify(e)}`);
    assert.match(e.message, /FMHA_MAX_SCRATCH_BYTES|scratch|memory/i, `${form}: message ${e.message}`);
  }
  assert.is(res.small, '1,64,1,8', `a small vanilla call fits the limit: ${JSON.stringify(res.small)}`);
  assert.is(res.fused, '1,1024,1,8', `fused needs O(S·D) scratch, not O(S²): ${JSON.stringify(res.fused)}`);
});

oom('an absurd shape is refused before allocating (no crash, no abort)', async () => {
  // 1 × 10^6 × 1 × 1 queries and keys: a 4 TB score matrix for vanilla; output 4 MB
  const q = randomTensor(r, [1, 1_000_000, 1, 1]);
  const err = await catchAsync(() => vanillaAttention(q, q, q), 'vanilla 10^6 × 10^6');
  assert.instance(err, FmhaError, describe(err));
  assert.is((err as FmhaError).code, 'ERR_FMHA_OOM', describe(err));
});
oom.run();
