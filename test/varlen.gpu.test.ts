// CUDA varlenAttention, packSequences and unpackSequences against the
// per-sequence float64 reference and the host implementations: ragged batches
// with zero-length sequences, Sq_b ≠ Sk_b, GQA, every option, head dims and
// dtypes, packed buffers longer than cuSeqlens[B] (rows past it: out untouched
// or 0, lse −Infinity), and the padding-free pipeline pack → varlen → unpack on
// the device against padded attention with seqlensK; pack / unpack into a
// caller's device out, and a bad out leaving it untouched.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Tensor, packSequences, unpackSequences, varlenAttention, attention,
  type VarlenAttentionOptions, type AttentionWithLse, type DType, type DeviceTensor,
} from '../lib/index.js';
import {
  referenceVarlen, cuSeqlensOf, readValues, relFrobenius, bitwiseEqual, rng, OUT_TOL, type VarlenRefResult,
} from './reference.js';
import { randomTensor, nanTensor, alibi, assertFmhaError, catchSync, checkResult, randomPackedBatch, checkVarlen, type PackedBatch, type Mode } from './helpers.js';
import { runVarlenCuda, requireCuda, DevicePool, DTYPES, HEAD_DIMS, VIAS, type Via } from './gpu_helpers.js';

requireCuda();

type Opts = Omit<VarlenAttentionOptions, 'cuSeqlensQ' | 'cuSeqlensK'>;

const COMBOS: [Mode, Via][] = [['async', 'device'], ['sync', 'host'], ['sync', 'device'], ['async', 'host']];

async function runAndCheck(label: string, b: PackedBatch, opts: Opts = {}): Promise<VarlenRefResult> {
  const ref = referenceVarlen(b.q, b.k, b.v, b.cuQ, b.cuK, opts);
  for (const [mode, via] of COMBOS) {
    const res = await runVarlenCuda(mode, via, b.q, b.k, b.v, { ...opts, cuSeqlensQ: b.cuQ, cuSeqlensK: b.cuK });
    checkVarlen(`${label} [cuda ${mode}/${via}]`, res, ref, b.q.dtype);
  }
  return ref;
}

// ---------------------------------------------------------------------------
const basic = suite('cuda varlen: ragged batches');
const RAGGED: { name: string; lq: number[]; lk?: number[]; Hq: number; Hkv?: number; D: number; Dv?: number; causal?: boolean }[] = [
  { name: 'lengths 0 and 1 among others', lq: [5, 0, 1, 70, 0, 33], Hq: 2, D: 64 },
  { name: 'lengths 0 and 1 among others, causal', lq: [5, 0, 1, 70, 0, 33], Hq: 2, D: 40, causal: true },
  { name: 'one sequence', lq: [129], Hq: 3, D: 128 },
  { name: 'many short sequences', lq: Array.from({ length: 40 }, (_, i) => (i * 7) % 13), Hq: 2, D: 32, causal: true },
  { name: 'long and short', lq: [300, 3, 130, 64, 65, 1], Hq: 2, D: 96, causal: true },
  { name: 'Dv ≠ D', lq: [17, 2, 40], Hq: 1, D: 256, Dv: 8 },
  { name: 'every sequence empty', lq: [0, 0, 0], Hq: 2, D: 64 },
  { name: 'no sequence (B = 0)', lq: [], Hq: 2, D: 64 },
  { name: 'chunked prefill (Sq_b < Sk_b), GQA', lq: [16, 1, 0, 40, 7], lk: [116, 1, 12, 240, 10], Hq: 4, Hkv: 2, D: 128, causal: true },
  { name: 'Sq_b > Sk_b under causal', lq: [10, 5, 3], lk: [4, 5, 0], Hq: 2, D: 64, causal: true },
  { name: 'cross-attention', lq: [3, 60, 0, 9], lk: [200, 1, 5, 0], Hq: 2, D: 192 },
  { name: 'MQA 6/1', lq: [5, 65, 12], Hq: 6, Hkv: 1, D: 64, causal: true },
];
for (const dtype of DTYPES) {
  RAGGED.forEach((c, idx) => {
    basic(`${dtype} ${c.name}: [${c.lq.join(', ')}]${c.causal ? ' causal' : ''}`, async () => {
      await runAndCheck(c.name, randomPackedBatch(30000 + idx, { ...c, dtype }), c.causal ? { causal: true } : {});
    });
  });
}
for (const D of HEAD_DIMS) {
  basic(`head dim ${D}, bfloat16 and float16, causal`, async () => {
    for (const dtype of ['bfloat16', 'float16'] as DType[]) {
      await runAndCheck(`D=${D}`, randomPackedBatch(30100 + D, { lq: [130, 0, 7, 64], Hq: 4, Hkv: 2, D, dtype }), { causal: true });
    }
  });
}
basic.run();

// ---------------------------------------------------------------------------
const options = suite('cuda varlen: every option, per sequence');
const OPT_BATCH = { lq: [37, 0, 1, 20, 80], lk: [37, 5, 1, 45, 60], Hq: 4, Hkv: 2, D: 64 };
const OPTS: [string, Opts][] = [
  ['scale 0.3', { scale: 0.3 }],
  ['window [5, 0]', { window: [5, 0] }],
  ['window [3, 7]', { window: [3, 7] }],
  ['window [−1, 2]', { window: [-1, 2] }],
  ['causal + window [8, −1]', { causal: true, window: [8, -1] }],
  ['softcap 3 with scale 2', { softcap: 3, scale: 2 }],
  ['alibiSlopes', { alibiSlopes: alibi(4) }],
  ['everything', { causal: true, scale: 0.4, window: [11, 2], softcap: 5, alibiSlopes: alibi(4, 2) }],
  ['maxSeqlen above the real maximum', { maxSeqlenQ: 4096, maxSeqlenK: 100 }],
];
for (const dtype of DTYPES) {
  OPTS.forEach(([name, opts], idx) => {
    options(`${dtype} ${name}`, async () => {
      await runAndCheck(name, randomPackedBatch(30200 + idx, { ...OPT_BATCH, dtype }), opts);
    });
  });
}

options('a strided q/k/v (slices of a fused QKV [T, 3, H, D]) with backend cuda', async () => {
  const lens = [20, 0, 45], T = 65, H = 2, D = 64;
  for (const dtype of DTYPES) {
    const qkv = randomTensor(rng(30300), [T, 3, H, D], dtype);
    const view = (i: number) => new Tensor(dtype, qkv.data.subarray(i * H * D), [T, H, D], [3 * H * D, D, 1]);
    const b: PackedBatch = { q: view(0), k: view(1), v: view(2), cuQ: cuSeqlensOf(lens), cuK: cuSeqlensOf(lens) };
    const ref = referenceVarlen(b.q, b.k, b.v, b.cuQ, b.cuK, { causal: true });
    checkVarlen(`strided ${dtype}`, await runVarlenCuda('async', 'host', b.q, b.k, b.v, { cuSeqlensQ: b.cuQ, cuSeqlensK: b.cuK, causal: true }), ref, dtype);
  }
});
options.run();

// ---------------------------------------------------------------------------
const bounds = suite('cuda varlen: packed buffers longer than cuSeqlens[B]');

bounds('rows of a NaN-poisoned out past cuSeqlensQ[B] stay untouched (host and device out); a new out has 0 there, lse −Infinity', async () => {
  for (const dtype of DTYPES) {
    const b = randomPackedBatch(30400, { lq: [7, 0, 66], lk: [9, 4, 66], Hq: 2, D: 64, dtype, extraQ: 6, extraK: 3 });
    const ref = referenceVarlen(b.q, b.k, b.v, b.cuQ, b.cuK, { causal: true });
    const Tq = 79, row = 2 * 64;
    for (const via of VIAS) {
      const out = nanTensor([Tq, 2, 64], dtype);
      const res = await runVarlenCuda('async', via, b.q, b.k, b.v, { cuSeqlensQ: b.cuQ, cuSeqlensK: b.cuK, causal: true, out });
      const got = res.out.data;
      for (let i = 73 * row; i < Tq * row; i++) {
        const nan = dtype === 'float32' ? Number.isNaN(got[i]) : got[i] === (dtype === 'float16' ? 0x7e00 : 0x7fc0);
        if (!nan) assert.unreachable(`${via}/${dtype}: out element ${i} past cuSeqlensQ[B] was written`);
      }
      const fresh: AttentionWithLse = await runVarlenCuda('sync', via, b.q, b.k, b.v, { cuSeqlensQ: b.cuQ, cuSeqlensK: b.cuK, causal: true });
      checkVarlen(`${via}/${dtype} new out`, fresh, ref, dtype);  // rows past the end: 0 and −Infinity, as the reference
    }
  }
});
bounds.run();

// ---------------------------------------------------------------------------
const pack = suite('cuda packSequences / unpackSequences');

pack('device pack and unpack equal the host ones bitwise (zero-length sequences, seqLen > longest)', async () => {
  for (const dtype of DTYPES) {
    const B = 5, S = 70, H = 3, D = 40, lengths = [70, 0, 1, 33, 69];
    const padded = randomTensor(rng(30500), [B, S, H, D], dtype);
    const host = packSequences(padded, lengths);
    const pool = new DevicePool();
    try {
      const dev = packSequences(await pool.up(padded), lengths);
      pool.keep(dev.packed);
      assert.equal([...dev.packed.shape], [...host.packed.shape]);
      assert.equal([...dev.cuSeqlens], [...host.cuSeqlens], 'cuSeqlens stays a host Int32Array');
      assert.is(dev.maxSeqlen, host.maxSeqlen);
      assert.ok(bitwiseEqual((await dev.packed.toHost()).data, host.packed.data), `${dtype}: packed`);
      for (const seqLen of [undefined, 80]) {
        const hu = unpackSequences(host.packed, host.cuSeqlens, seqLen);
        const du = pool.keep(unpackSequences(dev.packed, dev.cuSeqlens, seqLen));
        assert.equal([...du.shape], [...hu.shape]);
        assert.ok(bitwiseEqual((await du.toHost()).data, hu.data), `${dtype}: unpacked (seqLen ${seqLen}), pad rows zero`);
      }
    } finally {
      pool.dispose();
    }
  }
});

pack('device pack and unpack into a NaN-poisoned device out equal the fresh ones bitwise (pad rows 0); the call returns out', async () => {
  for (const dtype of DTYPES) {
    const B = 5, S = 70, H = 3, D = 40, lengths = [70, 0, 1, 33, 69];
    const padded = randomTensor(rng(30503), [B, S, H, D], dtype);
    const host = packSequences(padded, lengths);
    const pool = new DevicePool();
    try {
      const packOut = await pool.up(nanTensor(host.packed.shape, dtype));
      const dev = packSequences(await pool.up(padded), lengths, { out: packOut });
      assert.ok(dev.packed === packOut, 'pack returns opts.out itself');
      assert.equal([...dev.cuSeqlens], [...host.cuSeqlens]);
      assert.ok(bitwiseEqual((await packOut.toHost()).data, host.packed.data), `${dtype}: packed into out`);
      for (const seqLen of [undefined, 80]) {
        const want = unpackSequences(host.packed, host.cuSeqlens, seqLen);
        const out = await pool.up(nanTensor(want.shape, dtype));
        assert.ok(unpackSequences(packOut, dev.cuSeqlens, seqLen, { out }) === out, 'unpack returns opts.out itself');
        assert.ok(bitwiseEqual((await out.toHost()).data, want.data), `${dtype}: unpacked into out (seqLen ${seqLen}), every pad row 0`);
      }
      const allPad = await pool.up(nanTensor([3, 4, H, D], dtype));  // every sequence empty: all rows are pads
      unpackSequences(packOut, new Int32Array(4), 4, { out: allPad });
      assert.ok((await allPad.toHost()).data.every((x) => x === 0), `${dtype}: all-padding unpack zeroes out`);
    } finally {
      pool.dispose();
    }
  }
});

pack('a bad opts.out (shape, dtype, strided view, overlap, the other side) → FmhaError, out untouched', async () => {
  const pool = new DevicePool();
  try {
    const lengths = [5, 0, 3], cu = cuSeqlensOf(lengths);
    const hostPadded = randomTensor(rng(30504), [3, 5, 2, 4]);
    const padded = await pool.up(hostPadded);
    const packed = pool.keep(packSequences(padded, lengths).packed);
    const poison = (shape: number[], dtype: DType = 'float32') => pool.up(nanTensor(shape, dtype));
    const wide = await poison([8, 2, 8]);
    const cases: [string, string, RegExp[], DeviceTensor | Tensor, () => unknown][] = [];
    const add = (name: string, code: string, msg: RegExp[], out: DeviceTensor | Tensor, call: (o: never) => unknown) =>
      cases.push([name, code, msg, out, () => call(out as never)]);
    add('pack: wrong shape', 'ERR_FMHA_SHAPE', [/opts\.out\.shape/], await poison([9, 2, 4]), (o: DeviceTensor) => packSequences(padded, lengths, { out: o }));
    add('pack: wrong dtype', 'ERR_FMHA_DTYPE', [/opts\.out\.dtype/], await poison([8, 2, 4], 'float16'), (o: DeviceTensor) => packSequences(padded, lengths, { out: o }));
    add('pack: strided view', 'ERR_FMHA_ARGUMENT', [/contiguous/], pool.keep(wide.view([8, 2, 4], [16, 8, 1])), (o: DeviceTensor) => packSequences(padded, lengths, { out: o }));
    add('pack: overlapping padded', 'ERR_FMHA_ARGUMENT', [/overlap/], pool.keep(padded.view([8, 2, 4])), (o: DeviceTensor) => packSequences(padded, lengths, { out: o }));
    add('pack: host out, device padded', 'ERR_FMHA_ARGUMENT', [/opts\.out/, /DeviceTensor/], nanTensor([8, 2, 4]), (o: Tensor) => packSequences(padded as unknown as Tensor, lengths, { out: o }));
    add('pack: device out, host padded', 'ERR_FMHA_ARGUMENT', [/opts\.out/, /host/], await poison([8, 2, 4]), (o: DeviceTensor) => packSequences(hostPadded as unknown as DeviceTensor, lengths, { out: o }));
    add('unpack: wrong shape', 'ERR_FMHA_SHAPE', [/opts\.out\.shape/], await poison([3, 6, 2, 4]), (o: DeviceTensor) => unpackSequences(packed, cu, undefined, { out: o }));
    add('unpack: wrong dtype', 'ERR_FMHA_DTYPE', [/opts\.out\.dtype/], await poison([3, 5, 2, 4], 'bfloat16'), (o: DeviceTensor) => unpackSequences(packed, cu, undefined, { out: o }));
    add('unpack: host out, device packed', 'ERR_FMHA_ARGUMENT', [/opts\.out/, /DeviceTensor/], nanTensor([3, 5, 2, 4]), (o: Tensor) => unpackSequences(packed as unknown as Tensor, cu, undefined, { out: o }));
    add('unpack: seqLen below the longest', 'ERR_FMHA_ARGUMENT', [/seqLen/], await poison([3, 4, 2, 4]), (o: DeviceTensor) => unpackSequences(packed, cu, 4, { out: o }));
    for (const [name, code, msg, out, call] of cases) {
      const before = out instanceof Tensor ? out.data.slice() : (await out.toHost()).data;
      assertFmhaError(catchSync(call), code, msg, name);
      const after = out instanceof Tensor ? out.data : (await out.toHost()).data;
      assert.ok(bitwiseEqual(after, before), `${name}: out not written`);
    }
    assert.ok(bitwiseEqual((await padded.toHost()).data, hostPadded.data), 'padded untouched (the overlapping out)');
  } finally {
    pool.dispose();
  }
});

pack('empty cases: all lengths 0, B = 0', async () => {
  const pool = new DevicePool();
  try {
    const padded = await pool.up(randomTensor(rng(30501), [3, 4, 2, 8], 'float16'));
    const p = packSequences(padded, [0, 0, 0]);
    pool.keep(p.packed);
    assert.equal([...p.packed.shape], [0, 2, 8]);
    const u = pool.keep(unpackSequences(p.packed, p.cuSeqlens, 4));
    assert.ok((await u.toHost()).data.every((x) => x === 0), 'all padding');
    const e = pool.keep(unpackSequences(p.packed, new Int32Array([0]), 0));
    assert.equal([...e.shape], [0, 0, 2, 8]);
  } finally {
    pool.dispose();
  }
});

pack('a strided device view cannot be packed (ERR_FMHA_ARGUMENT); validation errors as on the host', async () => {
  const pool = new DevicePool();
  try {
    const base = await pool.up(randomTensor(rng(30502), [2, 6, 2, 8], 'float32'));
    const view = pool.keep(base.view([2, 3, 2, 8], [96, 32, 8, 1]));
    assertFmhaError(catchSync(() => packSequences(view, [1, 2])), 'ERR_FMHA_ARGUMENT', [/contiguous/], 'strided');
    assertFmhaError(catchSync(() => packSequences(base, [1])), 'ERR_FMHA_SHAPE', [/lengths/], 'wrong count');
    assertFmhaError(catchSync(() => packSequences(base, [1, 7])), 'ERR_FMHA_ARGUMENT', [/lengths\[1\]/], 'too long');
    const p = packSequences(base, [2, 3]);
    pool.keep(p.packed);
    assertFmhaError(catchSync(() => unpackSequences(p.packed, new Int32Array([0, 3, 2]))), 'ERR_FMHA_ARGUMENT', [/cuSeqlens/], 'decreasing');
  } finally {
    pool.dispose();
  }
});

pack('pack → varlenAttention → unpack on the device equals padded attention with seqlensK', async () => {
  const B = 4, S = 200, Hq = 8, Hkv = 2, D = 128, lengths = [200, 17, 0, 150];
  for (const dtype of ['float16', 'bfloat16'] as DType[]) {
    const r = rng(30600);
    const q = randomTensor(r, [B, S, Hq, D], dtype), k = randomTensor(r, [B, S, Hkv, D], dtype), v = randomTensor(r, [B, S, Hkv, D], dtype);
    const pool = new DevicePool();
    try {
      const [dq, dk, dv] = [await pool.up(q), await pool.up(k), await pool.up(v)];
      const pq = packSequences(dq, lengths), pk = packSequences(dk, lengths), pv = packSequences(dv, lengths);
      [pq, pk, pv].forEach((p) => pool.keep(p.packed));
      const o = pool.keep(await varlenAttention(pq.packed, pk.packed, pv.packed, { cuSeqlensQ: pq.cuSeqlens, cuSeqlensK: pk.cuSeqlens, causal: true }));
      const padded = pool.keep(unpackSequences(o, pq.cuSeqlens, S));
      const seqlensK = Int32Array.from(lengths);
      const viaPacked = await padded.toHost();
      // Rows past each length: zeros from unpack; padded attention's rows there attend to the visible keys,
      // so compare the real rows only, against the reference of padded attention.
      const ref = await attention(dq, dk, dv, { causal: true, seqlensK });
      pool.keep(ref);
      const refHost = await ref.toHost();
      const a = readValues(viaPacked), e = readValues(refHost);
      const row = Hq * D;
      for (let b = 0; b < B; b++) {
        const sl = (x: Float64Array) => x.subarray(b * S * row, (b * S + lengths[b]!) * row);
        if (lengths[b] === 0) continue;
        const err = relFrobenius(sl(a), sl(e));
        assert.ok(err < 2 * OUT_TOL[dtype], `${dtype} sequence ${b}: ${err}`);
      }
      checkResult(`padded reference ${dtype}`, { out: refHost }, q, k, v, { causal: true, seqlensK });
    } finally {
      pool.dispose();
    }
  }
});
pack.run();

