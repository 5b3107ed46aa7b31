// Padding-free variable-length batches (DESIGN §2, §3, §5): varlenAttention
// against a per-sequence float64 reference (referenceVarlen), every option,
// the bug classes other libraries had (zero-length sequences, max_seqlen 1,
// fewer tokens than sequences, a packed buffer longer than cuSeqlens[B]),
// malformed cuSeqlens → FmhaError, packSequences / unpackSequences (fresh and
// into a caller's out), and a cross-check against fused attention on the
// padded batch with seqlensK.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Tensor, FmhaError, attention, attentionSync, varlenAttention, varlenAttentionSync, packSequences, unpackSequences,
  setNumThreads, backends, type VarlenAttentionOptions, type AttentionWithLse, type FmhaErrorCode, type DType,
} from '../lib/index.js';
import {
  referenceVarlen, cuSeqlensOf, readValues, relFrobenius, compareLse, bitwiseEqual, rng,
  OUT_TOL, LSE_TOL, type VarlenRefResult,
} from './reference.js';
import { randomTensor, nanTensor, alibi, assertFmhaError, catchAsync, catchSync, describe, randomPackedBatch, checkVarlen, type PackedBatch, type Mode } from './helpers.js';

type Opts = Omit<VarlenAttentionOptions, 'cuSeqlensQ' | 'cuSeqlensK'>;

async function runVarlen(mode: Mode, b: PackedBatch, opts: Opts = {}): Promise<AttentionWithLse> {
  const o = { ...opts, cuSeqlensQ: b.cuQ, cuSeqlensK: b.cuK, returnLse: true as const };
  return mode === 'sync' ? varlenAttentionSync(b.q, b.k, b.v, o) : varlenAttention(b.q, b.k, b.v, o);
}

async function runAndCheck(label: string, b: PackedBatch, opts: Opts = {}, modes: readonly Mode[] = ['sync', 'async']): Promise<VarlenRefResult> {
  const ref = referenceVarlen(b.q, b.k, b.v, b.cuQ, b.cuK, opts);
  for (const mode of modes) checkVarlen(`${label} [${mode}]`, await runVarlen(mode, b, opts), ref, b.q.dtype);
  return ref;
}

// ---------------------------------------------------------------------------
const basic = suite('varlen: ragged batches against the per-sequence reference');

const RAGGED: { name: string; lq: number[]; lk?: number[]; Hq: number; Hkv?: number; D: number; Dv?: number; causal?: boolean }[] = [
  { name: 'lengths 0 and 1 among others', lq: [5, 0, 1, 70, 0, 33], Hq: 2, D: 40 },
  { name: 'lengths 0 and 1 among others, causal', lq: [5, 0, 1, 70, 0, 33], Hq: 2, D: 40, causal: true },
  { name: 'one sequence', lq: [129], Hq: 3, D: 64 },
  { name: 'many short sequences', lq: Array.from({ length: 40 }, (_, i) => (i * 7) % 13), Hq: 2, D: 16, causal: true },
  { name: 'long and short (several query and key blocks)', lq: [300, 3, 130, 64, 65, 1], Hq: 2, D: 80, Dv: 48, causal: true },
  { name: 'D 256, Dv 8', lq: [17, 2, 40], Hq: 1, D: 256, Dv: 8 },
  { name: 'D 1', lq: [9, 4], Hq: 2, D: 1 },
  { name: 'every sequence empty', lq: [0, 0, 0], Hq: 2, D: 8 },
  { name: 'no sequence (B = 0)', lq: [], Hq: 2, D: 8 },
];
RAGGED.forEach((c, idx) => {
  basic(`${c.name}: lengths [${c.lq.join(', ')}]${c.causal ? ' causal' : ''}`, async () => {
    const b = randomPackedBatch(20000 + idx, c);
    await runAndCheck(c.name, b, c.causal ? { causal: true } : {});
  });
});

basic('Sq_b ≠ Sk_b: chunked prefill (new queries over a longer prefix), causal bottom-right per sequence', async () => {
  const lq = [16, 1, 0, 40, 7], prefix = [100, 0, 12, 200, 3];
  const b = randomPackedBatch(20100, { lq, lk: lq.map((l, i) => l + prefix[i]!), Hq: 4, Hkv: 2, D: 64 });
  const ref = await runAndCheck('chunked prefill', b, { causal: true });
  assert.is(ref.noKeyRows, 0, 'every query sees its prefix');
});

basic('Sq_b > Sk_b under causal: the first Sq_b − Sk_b rows of the sequence see no key', async () => {
  const b = randomPackedBatch(20101, { lq: [10, 5, 3], lk: [4, 5, 0], Hq: 2, D: 32 });
  const ref = await runAndCheck('Sq > Sk causal', b, { causal: true });
  assert.ok(ref.noKeyRows > 0, 'test setup: some rows see no key');
});

basic('cross-attention: Sq_b and Sk_b unrelated, no mask', async () => {
  const b = randomPackedBatch(20102, { lq: [3, 60, 0, 9], lk: [200, 1, 5, 0], Hq: 2, D: 48 });
  await runAndCheck('cross-attention', b);
});

basic('GQA: Hq 8, Hkv 2 and MQA Hq 6, Hkv 1, causal', async () => {
  await runAndCheck('GQA 8/2', randomPackedBatch(20103, { lq: [33, 0, 70, 1], lk: [40, 2, 70, 1], Hq: 8, Hkv: 2, D: 64 }), { causal: true });
  await runAndCheck('MQA 6/1', randomPackedBatch(20104, { lq: [5, 65, 12], Hq: 6, Hkv: 1, D: 40 }), { causal: true });
});
basic.run();

// ---------------------------------------------------------------------------
const options = suite('varlen: every option, per sequence');

const OPT_BATCH = { lq: [37, 0, 1, 20, 80], lk: [37, 5, 1, 45, 60], Hq: 4, Hkv: 2, D: 40 };
const OPTS: [string, Opts][] = [
  ['scale 0.3', { scale: 0.3 }],
  ['window [5, 0]', { window: [5, 0] }],
  ['window [3, 7]', { window: [3, 7] }],
  ['window [−1, 2] with rows that see no key', { window: [-1, 2] }],
  ['causal + window [8, −1]', { causal: true, window: [8, -1] }],
  ['softcap 3 with scale 2', { softcap: 3, scale: 2 }],
  ['alibiSlopes', { alibiSlopes: alibi(4) }],
  ['causal + alibiSlopes + softcap', { causal: true, alibiSlopes: alibi(4, 2), softcap: 5 }],
  ['everything', { causal: true, scale: 0.4, window: [11, 2], softcap: 5, alibiSlopes: alibi(4, 2) }],
];
OPTS.forEach(([name, opts], idx) => {
  options(name, async () => {
    await runAndCheck(name, randomPackedBatch(20200 + idx, OPT_BATCH), opts);
  });
});

for (const dtype of ['float16', 'bfloat16'] as const) {
  options(`${dtype}: ragged, causal, GQA, Sq_b ≠ Sk_b (bfloat16 takes the AVX512-BF16 path where the CPU has it)`, async () => {
    const b = randomPackedBatch(20300, { lq: [70, 0, 1, 130, 9], lk: [70, 3, 1, 200, 9], Hq: 4, Hkv: 2, D: 64, dtype });
    await runAndCheck(dtype, b, { causal: true });
    const odd = randomPackedBatch(20301, { lq: [33, 2], Hq: 2, D: 41, Dv: 24, dtype });
    await runAndCheck(`${dtype} odd D`, odd, { softcap: 4, alibiSlopes: alibi(2) });
  });
}

options('maxSeqlenQ / maxSeqlenK equal to or above the real maximum are accepted', async () => {
  const b = randomPackedBatch(20400, { lq: [5, 9], lk: [7, 3], Hq: 2, D: 16 });
  await runAndCheck('exact', b, { maxSeqlenQ: 9, maxSeqlenK: 7 });
  await runAndCheck('larger', b, { maxSeqlenQ: 4096, maxSeqlenK: 100 });
});

options('max_seqlen 1: every sequence one token (decode-shaped), causal', async () => {
  const b = randomPackedBatch(20401, { lq: Array(9).fill(1), Hq: 4, Hkv: 1, D: 64 });
  await runAndCheck('max_seqlen 1', b, { causal: true, maxSeqlenQ: 1, maxSeqlenK: 1 });
});

options('fewer tokens than sequences: lengths [0, 1, 0, 0, 1, 0]', async () => {
  const b = randomPackedBatch(20402, { lq: [0, 1, 0, 0, 1, 0], Hq: 2, D: 32 });
  assert.is(b.q.shape[0], 2);
  await runAndCheck('T = 2 < B = 6', b, { causal: true });
});

options('lse is [Hq, Tq]: −Infinity for rows past cuSeqlensQ[B] and rows that see no key', async () => {
  const b = randomPackedBatch(20403, { lq: [4, 6], lk: [2, 6], Hq: 3, D: 16, extraQ: 5 });
  const res = varlenAttentionSync(b.q, b.k, b.v, { cuSeqlensQ: b.cuQ, cuSeqlensK: b.cuK, causal: true, returnLse: true });
  assert.equal([...res.lse.shape], [3, 15]);
  const lse = res.lse.data as Float32Array;
  for (let h = 0; h < 3; h++) {
    for (let t = 10; t < 15; t++) assert.is(lse[h * 15 + t], -Infinity, `lse[${h}, ${t}] past the end`);
    for (let t = 0; t < 2; t++) assert.is(lse[h * 15 + t], -Infinity, `lse[${h}, ${t}]: Sq 4 > Sk 2, causal`);
  }
  checkVarlen('lse', res, referenceVarlen(b.q, b.k, b.v, b.cuQ, b.cuK, { causal: true }), 'float32');
});

options('a strided q (slice of a fused QKV projection [T, 3, H, D]) needs no copy', async () => {
  const lens = [20, 0, 45], T = 65, H = 2, D = 32;
  const qkv = randomTensor(rng(20404), [T, 3, H, D]);
  const view = (i: number) => new Tensor('float32', qkv.data.subarray(i * H * D), [T, H, D], [3 * H * D, D, 1]);
  const b: PackedBatch = { q: view(0), k: view(1), v: view(2), cuQ: cuSeqlensOf(lens), cuK: cuSeqlensOf(lens) };
  await runAndCheck('strided QKV', b, { causal: true });
});
options.run();

// ---------------------------------------------------------------------------
const bounds = suite('varlen: packed buffers longer than cuSeqlens[B], out');

for (const dtype of ['float32', 'bfloat16'] as const) {
  bounds(`${dtype}: rows of a NaN-poisoned out at or past cuSeqlensQ[B] stay untouched; k/v rows past cuSeqlensK[B] are not read`, async () => {
    const b = randomPackedBatch(20500, { lq: [7, 0, 66], lk: [9, 4, 66], Hq: 2, D: 40, dtype, extraQ: 6, extraK: 3 });
    // NaN in the unread k/v rows: reading them would poison the result
    const kd = b.k.data, vd = b.v.data, poison = dtype === 'float32' ? NaN : 0x7fc0;
    kd.fill(poison, 79 * 2 * 40);
    vd.fill(poison, 79 * 2 * 40);
    const ref = referenceVarlen(b.q, b.k, b.v, b.cuQ, b.cuK, { causal: true });
    for (const mode of ['sync', 'async'] as const) {
      const out = nanTensor([79, 2, 40], dtype);
      const before = out.data.slice();
      const o = { cuSeqlensQ: b.cuQ, cuSeqlensK: b.cuK, causal: true, out, returnLse: true as const };
      const res = mode === 'sync' ? varlenAttentionSync(b.q, b.k, b.v, o) : await varlenAttention(b.q, b.k, b.v, o);
      assert.ok(res.out === out, 'resolves to the caller\'s out');
      const real = 73 * 2 * 40;
      assert.ok(bitwiseEqual(out.data.subarray(real), before.subarray(real)), `${mode}: rows past cuSeqlensQ[B] untouched`);
      const err = relFrobenius(readValues(out).subarray(0, real), ref.out.subarray(0, real));
      assert.ok(err < OUT_TOL[dtype], `${dtype} ${mode}: real rows, relative error ${err.toExponential(3)}`);
      const c = compareLse(readValues(res.lse), ref.lse, LSE_TOL[dtype]);
      assert.ok(c.ok, `${dtype} ${mode}: ${c.message}`);
    }
    const fresh = varlenAttentionSync(b.q, b.k, b.v, { cuSeqlensQ: b.cuQ, cuSeqlensK: b.cuK, causal: true, returnLse: true });
    checkVarlen(`${dtype} new out: rows past the end are 0`, fresh, ref, dtype);
  });
}

bounds('sync and async agree bitwise; repeated calls are deterministic', async () => {
  const b = randomPackedBatch(20501, { lq: [100, 3, 0, 64, 200], Hq: 4, Hkv: 2, D: 64 });
  const s1 = await runVarlen('sync', b, { causal: true, softcap: 10 });
  const s2 = await runVarlen('sync', b, { causal: true, softcap: 10 });
  const a = await runVarlen('async', b, { causal: true, softcap: 10 });
  assert.ok(bitwiseEqual(s1.out.data, s2.out.data) && bitwiseEqual(s1.lse.data, s2.lse.data), 'sync twice');
  assert.ok(bitwiseEqual(s1.out.data, a.out.data) && bitwiseEqual(s1.lse.data, a.lse.data), 'sync vs async');
});

bounds('AbortSignal: already aborted rejects with AbortError; an abort mid-flight rejects', async () => {
  const b = randomPackedBatch(20502, { lq: [2048, 1024], Hq: 4, D: 64 });
  const opts = { cuSeqlensQ: b.cuQ, cuSeqlensK: b.cuK };
  const pre = await catchAsync(() => varlenAttention(b.q, b.k, b.v, { ...opts, signal: AbortSignal.abort() }), 'pre-aborted');
  assert.is((pre as Error).name, 'AbortError', describe(pre));
  const ac = new AbortController();
  const p = varlenAttention(b.q, b.k, b.v, { ...opts, signal: ac.signal });
  setTimeout(() => ac.abort(), 1);
  const res = await p.then((x) => x, (e: unknown) => e);
  // a fast machine may finish first; if it rejected, it must be the AbortError
  if (!(res instanceof Tensor)) assert.is((res as Error).name, 'AbortError', describe(res));
});
bounds.run();

// ---------------------------------------------------------------------------
const cross = suite('varlen: equals fused attention on the padded batch with seqlensK');

for (const dtype of ['float32', 'bfloat16'] as const) {
  cross(`${dtype}: pack → varlenAttention → unpack vs attention(padded, { seqlensK })`, async () => {
    const lengths = [130, 1, 0, 64, 97, 3], B = lengths.length, S = 130, H = 4, D = 64;
    const r = rng(20600);
    const padded = (Hh: number) => randomTensor(r, [B, S, Hh, D], dtype);
    const q = padded(H), k = padded(2), v = padded(2);
    for (const causal of [false, true]) {
      const seqlensK = Int32Array.from(lengths);
      const want = attentionSync(q, k, v, { causal, seqlensK });
      const [pq, pk, pv] = [q, k, v].map((t) => packSequences(t, lengths));
      const got = varlenAttentionSync(pq!.packed, pk!.packed, pv!.packed,
        { causal, cuSeqlensQ: pq!.cuSeqlens, cuSeqlensK: pk!.cuSeqlens, maxSeqlenQ: pq!.maxSeqlen, maxSeqlenK: pk!.maxSeqlen });
      const back = unpackSequences(got, pq!.cuSeqlens, S);
      // rows past each length: 0 in the unpacked result; compare the real rows only
      const w = readValues(want), g = readValues(back);
      const wr: number[] = [], gr: number[] = [];
      for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) {
        const base = (b * S + s) * H * D;
        for (let x = 0; x < H * D; x++) {
          if (s < lengths[b]!) { wr.push(w[base + x]!); gr.push(g[base + x]!); }
          else if (g[base + x] !== 0) assert.unreachable(`padding row (${b}, ${s}) must be 0, got ${g[base + x]}`);
        }
      }
      const err = relFrobenius(gr, wr);
      assert.ok(err < (dtype === 'float32' ? 1e-6 : 1e-2), `${dtype} causal=${causal}: varlen vs padded ${err.toExponential(3)}`);
    }
  });
}
cross.run();

// ---------------------------------------------------------------------------
const errs = suite('varlen: malformed calls → FmhaError with the right code, never a crash; out not written');

interface ErrCase { name: string; code: FmhaErrorCode | FmhaErrorCode[]; msg: RegExp[]; make: () => [Tensor, Tensor, Tensor, VarlenAttentionOptions] }
const eb = () => randomPackedBatch(20700, { lq: [3, 5], lk: [4, 2], Hq: 4, Hkv: 2, D: 8 });  // Tq = 8, Tk = 6
const withOpts = (o: Record<string, unknown>): [Tensor, Tensor, Tensor, VarlenAttentionOptions] => {
  const b = eb();
  return [b.q, b.k, b.v, { cuSeqlensQ: b.cuQ, cuSeqlensK: b.cuK, ...o } as VarlenAttentionOptions];
};
const f32 = (shape: number[]) => randomTensor(rng(20701), shape);

const ERR_CASES: ErrCase[] = [
  { name: 'cuSeqlensQ not starting at 0', code: 'ERR_FMHA_ARGUMENT', msg: [/cuSeqlensQ\[0\]/], make: () => withOpts({ cuSeqlensQ: Int32Array.from([1, 3, 8]) }) },
  { name: 'cuSeqlensK not starting at 0', code: 'ERR_FMHA_ARGUMENT', msg: [/cuSeqlensK\[0\]/], make: () => withOpts({ cuSeqlensK: Int32Array.from([-1, 4, 6]) }) },
  { name: 'cuSeqlensQ decreasing', code: 'ERR_FMHA_ARGUMENT', msg: [/cuSeqlensQ\[2\]/, /decrease/], make: () => withOpts({ cuSeqlensQ: Int32Array.from([0, 5, 3]) }) },
  { name: 'cuSeqlensK decreasing', code: 'ERR_FMHA_ARGUMENT', msg: [/cuSeqlensK/], make: () => withOpts({ cuSeqlensK: Int32Array.from([0, 4, 2]) }) },
  { name: 'cuSeqlensQ past the end of q', code: 'ERR_FMHA_ARGUMENT', msg: [/cuSeqlensQ\[2\]/, /past the end/, /\b8\b/], make: () => withOpts({ cuSeqlensQ: Int32Array.from([0, 3, 9]) }) },
  { name: 'cuSeqlensK past the end of k', code: 'ERR_FMHA_ARGUMENT', msg: [/cuSeqlensK/, /past the end/], make: () => withOpts({ cuSeqlensK: Int32Array.from([0, 4, 7]) }) },
  { name: 'cuSeqlensQ at 2^31 − 1 (no overflow on the way)', code: 'ERR_FMHA_ARGUMENT', msg: [/cuSeqlensQ/], make: () => withOpts({ cuSeqlensQ: Int32Array.from([0, 2 ** 31 - 1, 8]) }) },
  { name: 'cuSeqlensK with one entry more than cuSeqlensQ', code: 'ERR_FMHA_SHAPE', msg: [/cuSeqlensK/, /\b3\b/], make: () => withOpts({ cuSeqlensK: Int32Array.from([0, 4, 6, 6]) }) },
  { name: 'cuSeqlensQ empty', code: 'ERR_FMHA_SHAPE', msg: [/cuSeqlensQ/], make: () => withOpts({ cuSeqlensQ: new Int32Array(0) }) },
  { name: 'cuSeqlensQ a Uint32Array', code: 'ERR_FMHA_DTYPE', msg: [/cuSeqlensQ/, /Int32Array/], make: () => withOpts({ cuSeqlensQ: Uint32Array.from([0, 3, 8]) }) },
  { name: 'cuSeqlensK a number[]', code: 'ERR_FMHA_DTYPE', msg: [/cuSeqlensK/], make: () => withOpts({ cuSeqlensK: [0, 4, 6] }) },
  { name: 'cuSeqlensQ missing', code: 'ERR_FMHA_DTYPE', msg: [/cuSeqlensQ/], make: () => withOpts({ cuSeqlensQ: undefined }) },
  { name: 'maxSeqlenQ below the real maximum', code: 'ERR_FMHA_ARGUMENT', msg: [/maxSeqlenQ/, /\b5\b/], make: () => withOpts({ maxSeqlenQ: 4 }) },
  { name: 'maxSeqlenK below the real maximum', code: 'ERR_FMHA_ARGUMENT', msg: [/maxSeqlenK/, /\b4\b/], make: () => withOpts({ maxSeqlenK: 3 }) },
  { name: 'maxSeqlenQ not an integer', code: 'ERR_FMHA_ARGUMENT', msg: [/maxSeqlenQ/], make: () => withOpts({ maxSeqlenQ: 5.5 }) },
  { name: 'maxSeqlenK a string', code: 'ERR_FMHA_ARGUMENT', msg: [/maxSeqlenK/], make: () => withOpts({ maxSeqlenK: '9' }) },
  { name: 'seqlensK (a padded-batch option)', code: 'ERR_FMHA_ARGUMENT', msg: [/seqlensK/, /padded/], make: () => withOpts({ seqlensK: Int32Array.from([4, 2]) }) },
  { name: 'bias (a padded-batch option)', code: 'ERR_FMHA_ARGUMENT', msg: [/bias/, /padded/], make: () => withOpts({ bias: f32([2, 4, 5, 4]) }) },
  { name: 'an unknown option', code: 'ERR_FMHA_ARGUMENT', msg: [/cuSeqlens\b/], make: () => withOpts({ cuSeqlens: Int32Array.from([0, 3, 8]) }) },
  { name: 'q of rank 4 (a padded batch)', code: 'ERR_FMHA_SHAPE', msg: [/\bq\b/, /tokensQ/], make: () => { const [, k, v, o] = withOpts({}); return [f32([1, 8, 4, 8]), k, v, o]; } },
  { name: 'v with fewer tokens than k', code: 'ERR_FMHA_SHAPE', msg: [/\bv\b/], make: () => { const [q, k, , o] = withOpts({}); return [q, k, f32([5, 2, 8]), o]; } },
  { name: 'Hq % Hkv ≠ 0', code: 'ERR_FMHA_SHAPE', msg: [/headsKV/], make: () => { const [q, , , o] = withOpts({}); return [q, f32([6, 3, 8]), f32([6, 3, 8]), o]; } },
  { name: 'out of the padded shape', code: 'ERR_FMHA_SHAPE', msg: [/\bout\b/], make: () => withOpts({ out: nanTensor([2, 5, 4, 8]) }) },
  { name: 'out is q', code: 'ERR_FMHA_ARGUMENT', msg: [/\bout\b/], make: () => { const [q, k, v, o] = withOpts({}); return [q, k, v, { ...o, out: q }]; } },
  { name: 'opts null', code: 'ERR_FMHA_DTYPE', msg: [/cuSeqlensQ/], make: () => { const [q, k, v] = withOpts({}); return [q, k, v, null as unknown as VarlenAttentionOptions]; } },
];
for (const c of ERR_CASES) {
  errs(`${Array.isArray(c.code) ? c.code.join('|') : c.code}: ${c.name}`, async () => {
    const [q, k, v, opts] = c.make();
    const out = opts?.out;
    const before = out ? out.data.slice() : undefined;
    assertFmhaError(await catchAsync(() => varlenAttention(q, k, v, opts), c.name), c.code, c.msg, `async: ${c.name}`);
    assertFmhaError(catchSync(() => varlenAttentionSync(q, k, v, opts)), c.code, c.msg, `sync: ${c.name}`);
    if (out && before) assert.ok(bitwiseEqual(out.data, before), 'out not written');
  });
}

errs('cuSeqlens mutated after an async call started does not move rows out of bounds (the binding copies it)', async () => {
  const b = randomPackedBatch(20702, { lq: [500, 300], Hq: 2, D: 64 });
  const cuQ = b.cuQ.slice(), cuK = b.cuK.slice();
  const ref = referenceVarlen(b.q, b.k, b.v, b.cuQ, b.cuK);
  const p = varlenAttention(b.q, b.k, b.v, { cuSeqlensQ: cuQ, cuSeqlensK: cuK, returnLse: true });
  cuQ[2] = 1 << 30; cuK[2] = 1 << 30; cuQ[1] = -5;
  checkVarlen('mutated cuSeqlens', await p, ref, 'float32');
});

errs('seeded fuzz: 2000 random cuSeqlens / maxSeqlen combinations give a result or an FmhaError, never a crash', () => {
  const r = rng(20703);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const b = randomPackedBatch(20704, { lq: [4, 4], Hq: 2, D: 8 });
  let ok = 0, rejected = 0;
  for (let i = 0; i < 2000; i++) {
    const n = pick([0, 1, 2, 3, 5]);
    const cu = () => Int32Array.from({ length: n }, () => pick([-1, 0, 1, 3, 4, 8, 9, 2 ** 31 - 1, -(2 ** 31)]));
    const opts = { cuSeqlensQ: cu(), cuSeqlensK: r() < 0.5 ? cu() : undefined, maxSeqlenQ: pick([undefined, 0, 4, 9, -1, 1.5, NaN]) };
    const cuK = opts.cuSeqlensK ?? opts.cuSeqlensQ;
    try {
      varlenAttentionSync(b.q, b.k, b.v, { ...opts, cuSeqlensK: cuK } as VarlenAttentionOptions);
      ok++;
    } catch (e) {
      if (!(e instanceof FmhaError)) assert.unreachable(`call ${i} threw ${describe(e)}`);
      rejected++;
    }
  }
  assert.ok(ok > 0 && rejected > 1000, `some valid (${ok}), most rejected (${rejected})`);
});
errs.run();

// ---------------------------------------------------------------------------
const packing = suite('packSequences / unpackSequences');

/** Asserts packed row cu[b] + s holds padded (b, s) exactly, for every s < lengths[b]. */
function checkPacked(label: string, padded: Tensor, lengths: number[], packed: Tensor, cu: Int32Array): void {
  const [, S, H, D] = padded.shape as [number, number, number, number];
  const row = H * D, pv = readValues(padded), kv = readValues(packed);
  assert.equal([...packed.shape], [cu[lengths.length], H, D], `${label}: packed.shape`);
  assert.is(packed.dtype, padded.dtype);
  assert.equal([...cu], [...cuSeqlensOf(lengths)], `${label}: cuSeqlens`);
  for (let b = 0; b < lengths.length; b++) {
    for (let s = 0; s < lengths[b]!; s++) {
      for (let x = 0; x < row; x++) {
        if (!Object.is(kv[(cu[b]! + s) * row + x], pv[(b * S + s) * row + x])) assert.unreachable(`${label}: packed row ${cu[b]! + s} ≠ padded (${b}, ${s})`);
      }
    }
  }
}

for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
  packing(`${dtype}: round trip with lengths incl. 0, 1 and S; padding comes back as zeros`, () => {
    const lengths = [7, 0, 1, 13, 13, 2], B = 6, S = 13, H = 3, D = 5;
    const padded = randomTensor(rng(20800), [B, S, H, D], dtype);
    const { packed, cuSeqlens, maxSeqlen } = packSequences(padded, lengths);
    assert.is(maxSeqlen, 13);
    checkPacked(dtype, padded, lengths, packed, cuSeqlens);
    for (const seqLen of [undefined, 13, 20]) {
      const back = unpackSequences(packed, cuSeqlens, seqLen);
      const S2 = seqLen ?? 13;
      assert.equal([...back.shape], [B, S2, H, D]);
      const pv = readValues(padded), bv = readValues(back);
      for (let b = 0; b < B; b++) for (let s = 0; s < S2; s++) for (let x = 0; x < H * D; x++) {
        const want = s < lengths[b]! ? pv[(b * S + s) * H * D + x]! : 0;
        if (!Object.is(bv[(b * S2 + s) * H * D + x], want)) assert.unreachable(`unpack seqLen ${seqLen}: (${b}, ${s}) [${x}] = ${bv[(b * S2 + s) * H * D + x]}, expected ${want}`);
      }
    }
  });
}

packing('lengths as a plain array, an Int32Array, a Float64Array or an array-like object', () => {
  const padded = randomTensor(rng(20801), [3, 4, 2, 8]);
  const arrayLike = { length: 3, 0: 4, 1: 0, 2: 2 };
  for (const lengths of [[4, 0, 2], Int32Array.from([4, 0, 2]), Float64Array.from([4, 0, 2]), Uint8Array.from([4, 0, 2]), arrayLike]) {
    const { packed, cuSeqlens } = packSequences(padded, lengths);
    checkPacked(lengths.constructor.name, padded, [4, 0, 2], packed, cuSeqlens);
  }
});

packing('a strided padded view (q of a fused [B, S, 3, H, D] projection) packs without a copy first', () => {
  const B = 3, S = 9, H = 2, D = 6, lengths = [9, 4, 0];
  const qkv = randomTensor(rng(20802), [B, S, 3, H, D]);
  const k = new Tensor('float32', qkv.data.subarray(H * D), [B, S, H, D], [S * 3 * H * D, 3 * H * D, D, 1]);
  const { packed, cuSeqlens } = packSequences(k, lengths);
  checkPacked('strided', k, lengths, packed, cuSeqlens);
  // heads not adjacent either: a view that takes every other head of [B, S, 2H, D]
  const wide = randomTensor(rng(20803), [B, S, 2 * H, D]);
  const everyOther = new Tensor('float32', wide.data, [B, S, H, D], [S * 2 * H * D, 2 * H * D, 2 * D, 1]);
  const p2 = packSequences(everyOther, lengths);
  checkPacked('every other head', everyOther, lengths, p2.packed, p2.cuSeqlens);
  // a strided packed tensor unpacks too: the first half of each head's row, 6 tokens
  const src = p2.packed.data as Float32Array;
  const back = unpackSequences(new Tensor('float32', src, [6, H, D / 2], [H * D, D, 1]), Int32Array.from([0, 6]));
  assert.equal([...back.shape], [1, 6, H, D / 2]);
  const bv = back.data as Float32Array;
  for (let t = 0; t < 6; t++) for (let h = 0; h < H; h++) for (let d = 0; d < D / 2; d++) {
    assert.is(bv[(t * H + h) * (D / 2) + d], src[t * H * D + h * D + d], `unpacked strided (${t}, ${h}, ${d})`);
  }
});

packing('large enough to take the threaded copy (8 MiB), rows past cuSeqlens[B] of packed are not read', () => {
  const B = 8, S = 512, H = 8, D = 64;
  const lengths = [512, 1, 300, 0, 511, 17, 256, 400];
  const padded = randomTensor(rng(20804), [B, S, H, D]);
  const { packed, cuSeqlens } = packSequences(padded, lengths);
  checkPacked('threaded', padded, lengths, packed, cuSeqlens);
  const T = cuSeqlens[B]!;
  const longer = new Float32Array((T + 3) * H * D).fill(NaN);
  longer.set(packed.data as Float32Array);
  const back = unpackSequences(new Tensor('float32', longer, [T + 3, H, D]), cuSeqlens, S);
  const pv = padded.data as Float32Array, bv = back.data as Float32Array;
  for (let b = 0; b < B; b++) {
    const n = lengths[b]! * H * D, base = b * S * H * D;
    assert.ok(bitwiseEqual(bv.subarray(base, base + n), pv.subarray(base, base + n)), `sequence ${b}`);
    assert.ok(bv.subarray(base + n, base + S * H * D).every((x) => x === 0), `sequence ${b} padding`);
  }
});

packing('empty batches: B = 0 and every length 0 are legal', () => {
  const e = packSequences(randomTensor(rng(20805), [0, 5, 2, 4]), []);
  assert.equal([...e.packed.shape], [0, 2, 4]);
  assert.equal([...e.cuSeqlens], [0]);
  assert.is(e.maxSeqlen, 0);
  assert.equal([...unpackSequences(e.packed, e.cuSeqlens).shape], [0, 0, 2, 4]);
  const z = packSequences(randomTensor(rng(20806), [3, 5, 2, 4]), [0, 0, 0]);
  assert.equal([...z.packed.shape], [0, 2, 4]);
  assert.equal([...unpackSequences(z.packed, z.cuSeqlens, 5).shape], [3, 5, 2, 4]);
});

packing('packSequences does not wait behind an async attention call holding the CPU pool (the event loop stays free)', async () => {
  const big = randomTensor(rng(20807), [1, 6144, 8, 64]);
  let settled = 0;
  const p = attention(big, big, big).then(() => { settled = performance.now(); });
  await new Promise((r) => setTimeout(r, 30));  // the dispatcher has taken the pool by now
  const padded = randomTensor(rng(20808), [8, 512, 8, 64]);  // 8 MiB: big enough to want the pool
  const t0 = performance.now();
  const { packed } = packSequences(padded, [512, 1, 300, 0, 511, 17, 256, 400]);
  const unpacked = unpackSequences(packed, cuSeqlensOf([512, 1, 300, 0, 511, 17, 256, 400]), 512);
  const took = performance.now() - t0;
  await p;
  assert.is(unpacked.shape[0], 8);
  if (settled - t0 > 200) assert.ok(took < (settled - t0) / 2, `pack + unpack took ${took.toFixed(1)} ms while the attention call ran ${(settled - t0).toFixed(0)} ms more`);
});

const PACK_ERRS: [string, FmhaErrorCode, RegExp[], () => unknown][] = [
  ['lengths.length ≠ B', 'ERR_FMHA_SHAPE', [/lengths/, /\b3\b/], () => packSequences(randomTensor(rng(1), [3, 4, 2, 2]), [1, 2])],
  ['a negative length', 'ERR_FMHA_ARGUMENT', [/lengths\[1\]/], () => packSequences(randomTensor(rng(1), [3, 4, 2, 2]), [1, -1, 2])],
  ['a length > S', 'ERR_FMHA_ARGUMENT', [/lengths\[2\]/, /\b4\b/], () => packSequences(randomTensor(rng(1), [3, 4, 2, 2]), [1, 1, 5])],
  ['a fractional length', 'ERR_FMHA_ARGUMENT', [/lengths\[0\]/], () => packSequences(randomTensor(rng(1), [3, 4, 2, 2]), [1.5, 1, 1])],
  ['a NaN length', 'ERR_FMHA_ARGUMENT', [/lengths\[0\]/], () => packSequences(randomTensor(rng(1), [3, 4, 2, 2]), [NaN, 1, 1])],
  ['a string length', 'ERR_FMHA_ARGUMENT', [/lengths\[1\]/], () => packSequences(randomTensor(rng(1), [3, 4, 2, 2]), [1, '2', 1] as unknown as number[])],
  ['lengths a number', 'ERR_FMHA_DTYPE', [/lengths/], () => packSequences(randomTensor(rng(1), [3, 4, 2, 2]), 3 as unknown as number[])],
  ['lengths null', 'ERR_FMHA_DTYPE', [/lengths/], () => packSequences(randomTensor(rng(1), [3, 4, 2, 2]), null as unknown as number[])],
  ['lengths an object with a huge length', 'ERR_FMHA_SHAPE', [/lengths/], () => packSequences(randomTensor(rng(1), [3, 4, 2, 2]), { length: 1e18 } as unknown as number[])],
  ['lengths a BigInt64Array', 'ERR_FMHA_DTYPE', [/lengths/], () => packSequences(randomTensor(rng(1), [1, 4, 2, 2]), BigInt64Array.from([1n]) as unknown as number[])],
  ['padded of rank 3', 'ERR_FMHA_SHAPE', [/padded/], () => packSequences(randomTensor(rng(1), [4, 2, 2]), [1, 2, 3, 4])],
  ['padded not a Tensor', 'ERR_FMHA_DTYPE', [/padded/], () => packSequences(new Float32Array(4) as unknown as Tensor, [1])],
  ['cuSeqlens a number[]', 'ERR_FMHA_DTYPE', [/cuSeqlens/], () => unpackSequences(randomTensor(rng(1), [4, 2, 2]), [0, 4] as unknown as Int32Array)],
  ['cuSeqlens empty', 'ERR_FMHA_SHAPE', [/cuSeqlens/], () => unpackSequences(randomTensor(rng(1), [4, 2, 2]), new Int32Array(0))],
  ['cuSeqlens not starting at 0', 'ERR_FMHA_ARGUMENT', [/cuSeqlens\[0\]/], () => unpackSequences(randomTensor(rng(1), [4, 2, 2]), Int32Array.from([1, 4]))],
  ['cuSeqlens decreasing', 'ERR_FMHA_ARGUMENT', [/cuSeqlens\[2\]/], () => unpackSequences(randomTensor(rng(1), [4, 2, 2]), Int32Array.from([0, 3, 2]))],
  ['cuSeqlens past the end', 'ERR_FMHA_ARGUMENT', [/past the end/], () => unpackSequences(randomTensor(rng(1), [4, 2, 2]), Int32Array.from([0, 3, 5]))],
  ['seqLen below the longest sequence', 'ERR_FMHA_ARGUMENT', [/seqLen/, /\b3\b/], () => unpackSequences(randomTensor(rng(1), [4, 2, 2]), Int32Array.from([0, 3, 4]), 2)],
  ['seqLen negative', 'ERR_FMHA_ARGUMENT', [/seqLen/], () => unpackSequences(randomTensor(rng(1), [4, 2, 2]), Int32Array.from([0, 3, 4]), -1)],
  ['packed of rank 4', 'ERR_FMHA_SHAPE', [/packed/], () => unpackSequences(randomTensor(rng(1), [1, 4, 2, 2]), Int32Array.from([0, 4]))],
  // 4 tokens of 2^21 heads × 2^10 (a zero-stride view of 1024 floats), seqLen 2^31 − 1: B·S·H·D > 2^63
  ['an unpacked shape whose element count overflows', 'ERR_FMHA_SHAPE', [/padded/, /2\^63/],
    () => unpackSequences(new Tensor('float32', new Float32Array(1024), [4, 2 ** 21, 2 ** 10], [0, 0, 1]), Int32Array.from([0, 1, 2, 3, 4]), 2 ** 31 - 1)],
];
for (const [name, code, msg, fn] of PACK_ERRS) {
  packing(`${code}: ${name}`, () => { assertFmhaError(catchSync(fn), code, msg, name); });
}
packing.run();

// ---------------------------------------------------------------------------
const into = suite('packSequences / unpackSequences into opts.out');

/** A NaN-poisoned out receives exactly what a fresh call returns (every pad row of unpack included) and is the result. */
function checkInto(label: string, padded: Tensor, lengths: number[], seqLens: (number | undefined)[]): void {
  const fresh = packSequences(padded, lengths);
  const T = fresh.cuSeqlens[lengths.length]!, [, , H, D] = padded.shape as [number, number, number, number];
  const packOut = nanTensor([T, H, D], padded.dtype);
  const p = packSequences(padded, lengths, { out: packOut });
  assert.ok(p.packed === packOut, `${label}: pack returns opts.out itself`);
  assert.equal([...p.cuSeqlens], [...fresh.cuSeqlens], `${label}: cuSeqlens`);
  assert.is(p.maxSeqlen, fresh.maxSeqlen, `${label}: maxSeqlen`);
  assert.ok(bitwiseEqual(packOut.data, fresh.packed.data), `${label}: pack into out == fresh pack, bitwise`);
  for (const seqLen of seqLens) {
    const want = unpackSequences(fresh.packed, fresh.cuSeqlens, seqLen);
    const out = nanTensor(want.shape, padded.dtype);
    const got = unpackSequences(fresh.packed, fresh.cuSeqlens, seqLen, { out });
    assert.ok(got === out, `${label}: unpack returns opts.out itself`);
    // the fresh result's pads are +0: the poisoned out must hold exactly those zeros
    assert.ok(bitwiseEqual(out.data, want.data), `${label} seqLen ${seqLen}: unpack into out == fresh unpack (pad rows 0), bitwise`);
  }
}

for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
  into(`${dtype}: odd sizes, lengths 0, 1 and S, seqLen above the longest; pad rows of a NaN out become 0`, () => {
    checkInto(dtype, randomTensor(rng(20900), [5, 11, 3, 7], dtype), [11, 0, 1, 6, 10], [undefined, 11, 14]);
    checkInto(`${dtype} every length 0`, randomTensor(rng(20901), [3, 4, 1, 3], dtype), [0, 0, 0], [undefined, 4]);
    checkInto(`${dtype} B = 0`, randomTensor(rng(20902), [0, 4, 1, 3], dtype), [], [undefined, 2]);
  });
}

into('strided inputs: a padded view packs into out, a packed view unpacks into out', () => {
  const B = 3, S = 9, H = 2, D = 6, lengths = [9, 4, 0];
  const qkv = randomTensor(rng(20903), [B, S, 3, H, D]);
  const k = new Tensor('float32', qkv.data.subarray(H * D), [B, S, H, D], [S * 3 * H * D, 3 * H * D, D, 1]);
  checkInto('strided padded', k, lengths, [undefined, 12]);
  const wide = randomTensor(rng(20904), [13, H, 2 * D]);  // the first half of each head's row
  const half = new Tensor('float32', wide.data, [13, H, D], [2 * H * D, 2 * D, 1]);
  const cu = cuSeqlensOf([9, 4, 0]);
  const want = unpackSequences(half, cu, 10), out = nanTensor([3, 10, H, D]);
  assert.ok(unpackSequences(half, cu, 10, { out }) === out);
  assert.ok(bitwiseEqual(out.data, want.data), 'strided packed into out');
});

into('threaded copies (8 MiB+): pool pieces that split sequences in their rows and in their pads, 1 to 3 threads', () => {
  // 7·512 padded rows: with 2 threads the split falls in sequence 3's pads, with 3 in sequences 2 and 4's rows
  const lengths = [512, 1, 300, 100, 511, 17, 0];
  const padded = randomTensor(rng(20905), [7, 512, 8, 64]);
  const initial = backends().cpu.threads;
  try {
    for (const n of [1, 2, 3]) {
      setNumThreads(n);
      checkInto(`${n} threads`, padded, lengths, [512, 515]);
    }
  } finally {
    setNumThreads(initial);
  }
});

into('out is written again on every call (a reused buffer holds only the latest result)', () => {
  const padded = randomTensor(rng(20906), [2, 6, 2, 4]), cu = cuSeqlensOf([6, 2]);
  const out = nanTensor([2, 6, 2, 4]);
  unpackSequences(packSequences(padded, [6, 6]).packed, cuSeqlensOf([6, 6]), 6, { out });
  const p = packSequences(padded, [6, 2]).packed;
  unpackSequences(p, cu, 6, { out });
  assert.ok(bitwiseEqual(out.data, unpackSequences(p, cu, 6).data), 'the rows past length 2 are 0 again, not the previous call\'s');
});

into('opts null or without out: a new result, as without opts', () => {
  const padded = randomTensor(rng(20907), [2, 3, 1, 2]);
  for (const opts of [null, undefined, {}, { out: undefined }]) {
    const p = packSequences(padded, [3, 1], opts);
    assert.ok(bitwiseEqual(p.packed.data, packSequences(padded, [3, 1]).packed.data));
    assert.ok(bitwiseEqual(unpackSequences(p.packed, p.cuSeqlens, 4, opts).data, unpackSequences(p.packed, p.cuSeqlens, 4).data));
  }
});

// Every case: the out handed in (NaN-poisoned, unless it aliases the input) is bitwise unchanged after the error.
interface OutErrCase { name: string; code: FmhaErrorCode; msg: RegExp[]; make: () => { out: Tensor; call: () => unknown } }
const PB = 3, PS = 5, PH = 2, PD = 4, PLEN = [5, 0, 3];  // packed [8, 2, 4]
const padIn = (dtype: DType = 'float32') => randomTensor(rng(20910), [PB, PS, PH, PD], dtype);
const packIn = () => packSequences(padIn(), PLEN).packed;
const PCU = cuSeqlensOf(PLEN);
const packCase = (name: string, code: FmhaErrorCode, msg: RegExp[], out: () => Tensor, call?: (o: Tensor) => unknown): OutErrCase =>
  ({ name: `pack: ${name}`, code, msg, make: () => { const o = out(); return { out: o, call: () => (call ?? ((x) => packSequences(padIn(), PLEN, { out: x })))(o) }; } });
const unpackCase = (name: string, code: FmhaErrorCode, msg: RegExp[], out: () => Tensor, call?: (o: Tensor) => unknown): OutErrCase =>
  ({ name: `unpack: ${name}`, code, msg, make: () => { const o = out(); return { out: o, call: () => (call ?? ((x) => unpackSequences(packIn(), PCU, undefined, { out: x })))(o) }; } });
const stridedOf = (shape: number[]) => {  // a view of every other element of the last dim
  const n = shape.reduce((a, b) => a * b, 1), last = shape.length - 1;
  const strides = shape.map((_, i) => 2 * shape.slice(i + 1).reduce((a, b) => a * b, 1));
  strides[last] = 1;
  return new Tensor('float32', new Float32Array(2 * n).fill(NaN), shape, strides.map((s, i) => (i === last ? 1 : s)));
};

const OUT_ERRS: OutErrCase[] = [
  packCase('out of the wrong shape', 'ERR_FMHA_SHAPE', [/opts\.out\.shape/, /\[8, 2, 4\]/], () => nanTensor([9, 2, 4])),
  packCase('out of the padded shape', 'ERR_FMHA_SHAPE', [/opts\.out\.shape/], () => nanTensor([PB, PS, PH, PD])),
  packCase('out of another dtype', 'ERR_FMHA_DTYPE', [/opts\.out\.dtype/, /padded/, /float32/], () => nanTensor([8, 2, 4], 'bfloat16')),
  packCase('a strided out view', 'ERR_FMHA_ARGUMENT', [/opts\.out/, /contiguous/], () => stridedOf([8, 2, 4])),
  packCase('out overlapping padded', 'ERR_FMHA_ARGUMENT', [/opts\.out/, /overlap/, /padded/], () => padIn(),
    (p) => packSequences(p, PLEN, { out: new Tensor('float32', (p.data as Float32Array).subarray(8, 8 + 64), [8, 2, 4]) })),
  packCase('an invalid length (validated before the write)', 'ERR_FMHA_ARGUMENT', [/lengths\[1\]/], () => nanTensor([8, 2, 4]),
    (o) => packSequences(padIn(), [5, 6, 3], { out: o })),
  packCase('an unknown option', 'ERR_FMHA_ARGUMENT', [/opts\.output/, /packSequences/], () => nanTensor([8, 2, 4]),
    (o) => packSequences(padIn(), PLEN, { out: o, output: o } as { out: Tensor })),
  packCase('out not a Tensor', 'ERR_FMHA_DTYPE', [/opts\.out/], () => nanTensor([8, 2, 4]),
    (o) => packSequences(padIn(), PLEN, { out: o.data as unknown as Tensor })),
  packCase('opts a number', 'ERR_FMHA_ARGUMENT', [/opts must be an object/], () => nanTensor([8, 2, 4]),
    () => packSequences(padIn(), PLEN, 3 as unknown as { out: Tensor })),
  unpackCase('out of the wrong shape', 'ERR_FMHA_SHAPE', [/opts\.out\.shape/, /\[3, 5, 2, 4\]/], () => nanTensor([3, 6, 2, 4])),
  unpackCase('out shaped for another seqLen', 'ERR_FMHA_SHAPE', [/opts\.out\.shape/, /\[3, 7, 2, 4\]/], () => nanTensor([3, 5, 2, 4]),
    (o) => unpackSequences(packIn(), PCU, 7, { out: o })),
  unpackCase('out of another dtype', 'ERR_FMHA_DTYPE', [/opts\.out\.dtype/, /packed/], () => nanTensor([3, 5, 2, 4], 'float16')),
  unpackCase('a strided out view', 'ERR_FMHA_ARGUMENT', [/opts\.out/, /contiguous/], () => stridedOf([3, 5, 2, 4])),
  unpackCase('out overlapping packed', 'ERR_FMHA_ARGUMENT', [/opts\.out/, /overlap/, /packed/], () => nanTensor([3, 5, 2, 4]),
    (o) => unpackSequences(new Tensor('float32', (o.data as Float32Array).subarray(40, 104), [8, 2, 4]), PCU, undefined, { out: o })),
  unpackCase('cuSeqlens past the end (validated before the write)', 'ERR_FMHA_ARGUMENT', [/cuSeqlens/, /past the end/], () => nanTensor([3, 5, 2, 4]),
    (o) => unpackSequences(packIn(), Int32Array.from([0, 5, 5, 9]), 5, { out: o })),
  unpackCase('seqLen below the longest sequence', 'ERR_FMHA_ARGUMENT', [/seqLen/], () => nanTensor([3, 4, 2, 4]),
    (o) => unpackSequences(packIn(), PCU, 4, { out: o })),
  unpackCase('an unknown option', 'ERR_FMHA_ARGUMENT', [/opts\.seqLen/, /unpackSequences/], () => nanTensor([3, 5, 2, 4]),
    (o) => unpackSequences(packIn(), PCU, undefined, { out: o, seqLen: 5 } as { out: Tensor })),
];
for (const c of OUT_ERRS) {
  into(`${c.code}: ${c.name}; out untouched`, () => {
    const { out, call } = c.make();
    const before = out.data.slice();
    assertFmhaError(catchSync(call), c.code, c.msg, c.name);
    assert.ok(bitwiseEqual(out.data, before), `${c.name}: out not written`);
  });
}
into.run();
