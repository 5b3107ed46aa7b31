// DeviceTensor and device memory on a GPU (DESIGN §2, §4): toDevice/toHost
// round trips, views, dispose (idempotent, Symbol.dispose, use after dispose),
// the finalizer of a forgotten tensor, host/device mixing and backend 'cpu' on
// DeviceTensors, the caching allocator's steady state, OOM, and the enqueue-only
// synchronous form. Runs only where backends().cuda.available.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Tensor, DeviceTensor, toDevice, attention, attentionSync, vanillaAttention, backends, cudaMemoryStats,
  packSequences, unpackSequences, decodeAttention,
} from '../lib/index.js';
import { bitwiseEqual, rng } from './reference.js';
import { randomQKV, randomTensor, assertFmhaError, catchAsync, catchSync, checkResult } from './helpers.js';
import { requireCuda, DevicePool, DTYPES } from './gpu_helpers.js';

requireCuda();

const gc = (globalThis as { gc?: () => void }).gc;
const tick = () => new Promise((r) => setTimeout(r, 10));

// ---------------------------------------------------------------------------
const rt = suite('toDevice / toHost');

rt('round trips are bitwise for every dtype; dtype, shape and device carry over', async () => {
  for (const dtype of DTYPES) {
    const t = randomTensor(rng(40000), [3, 17, 5, 33], dtype);
    const d = await toDevice(t);
    assert.instance(d, DeviceTensor);
    assert.is(d.dtype, dtype);
    assert.equal([...d.shape], [3, 17, 5, 33]);
    assert.is(d.device, 0);
    assert.is(d.size, t.size);
    const back = await d.toHost();
    assert.instance(back, Tensor);
    assert.ok(bitwiseEqual(back.data, t.data), `${dtype}: bitwise`);
    d.dispose();
  }
});

rt('a strided host view becomes a contiguous DeviceTensor; empty tensors work', async () => {
  const base = randomTensor(rng(40001), [4, 6, 8], 'bfloat16');
  const view = new Tensor('bfloat16', base.data, [4, 3, 8], [48, 16, 1]);
  const d = await toDevice(view);
  assert.is(d.strides, undefined);
  assert.ok(bitwiseEqual((await d.toHost()).data, Tensor.fromFloat32(view.toFloat32(), [4, 3, 8], 'bfloat16').data));
  d.dispose();
  const e = await toDevice(new Tensor('float32', new Float32Array(0), [0, 4, 2]));
  assert.equal([...(await e.toHost()).shape], [0, 4, 2]);
  e.dispose();
});

rt('views share memory: toHost of a view gathers its elements; out-of-bounds views are ERR_FMHA_SHAPE', async () => {
  const t = randomTensor(rng(40002), [2, 10, 3, 4], 'float32');
  const d = await toDevice(t);
  const v = d.view([2, 5, 3, 4], [120, 24, 4, 1], 12);  // odd rows of dim 1
  const expected = new Tensor('float32', t.data.subarray(12), [2, 5, 3, 4], [120, 24, 4, 1]).toFloat32();
  assert.ok(bitwiseEqual((await v.toHost()).data, expected));
  assertFmhaError(catchSync(() => d.view([2, 10, 3, 4], undefined, 1)), 'ERR_FMHA_SHAPE', [/view/], 'past the end');
  assertFmhaError(catchSync(() => d.view([1], undefined, 241)), 'ERR_FMHA_ARGUMENT', [/offset/], 'offset past the end');
  d.dispose();
  assert.ok(bitwiseEqual((await v.toHost()).data, expected), 'a view keeps the memory after its base is disposed');
  v.dispose();
});

rt('bad device indexes are ERR_FMHA_ARGUMENT', async () => {
  const t = randomTensor(rng(40003), [2, 2], 'float32');
  const count = backends().cuda.devices.length;
  for (const device of [count, -1, 1.5, 1e9]) {
    assertFmhaError(await catchAsync(() => toDevice(t, { device })), 'ERR_FMHA_ARGUMENT', [/device/], `device ${device}`);
  }
});
rt.run();

// ---------------------------------------------------------------------------
const life = suite('dispose, finalizers, memory');

life('dispose is idempotent, Symbol.dispose disposes, a disposed tensor is ERR_FMHA_ARGUMENT', async () => {
  const { q, k, v } = randomQKV(41000, { B: 1, Sq: 8, Sk: 8, Hq: 2, D: 64, dtype: 'float16' });
  const [dq, dk, dv] = [await toDevice(q), await toDevice(k), await toDevice(v)];
  dq.dispose();
  dq.dispose();
  assert.ok(dq.disposed);
  assertFmhaError(await catchAsync(() => attention(dq, dk, dv)), 'ERR_FMHA_ARGUMENT', [/q is a disposed DeviceTensor/], 'disposed q');
  assertFmhaError(await catchAsync(() => dq.toHost()), 'ERR_FMHA_ARGUMENT', [/disposed/], 'toHost');
  dk[Symbol.dispose]();
  assert.ok(dk.disposed);
  assertFmhaError(catchSync(() => attentionSync(dv, dk, dv)), 'ERR_FMHA_ARGUMENT', [/k is a disposed DeviceTensor/], 'disposed k');
  dv.dispose();
});

life('the caching allocator: steady-state calls do not cudaMalloc; dispose returns the memory', async () => {
  const { q, k, v } = randomQKV(41100, { B: 2, Sq: 300, Sk: 300, Hq: 4, D: 128, dtype: 'bfloat16' });
  gc?.();
  await tick();
  const before = cudaMemoryStats();
  const pool = new DevicePool();
  const [dq, dk, dv] = [await pool.up(q), await pool.up(k), await pool.up(v)];
  const alibiSlopes = new Float32Array(4).fill(0.1);
  // Each round frees everything it allocates before the next starts: outputs, scratch, staged option arrays.
  const round = async () => {
    const r = await attention(dq, dk, dv, { causal: true, returnLse: true, alibiSlopes });
    r.out.dispose(); r.lse.dispose();
    (await vanillaAttention(dq, dk, dv, { alibiSlopes })).dispose();
    const s = attentionSync(dq, dk, dv);
    await s.toHost();
    s.dispose();
  };
  for (let i = 0; i < 2; i++) await round();
  const warm = cudaMemoryStats();
  for (let i = 0; i < 20; i++) await round();
  const steady = cudaMemoryStats();
  assert.is(steady.mallocCalls, warm.mallocCalls, 'no cudaMalloc after warm-up');
  assert.is(steady.inUseBytes, warm.inUseBytes, 'nothing held across rounds');
  pool.dispose();
  const after = cudaMemoryStats();
  assert.ok(after.inUseBytes <= before.inUseBytes, `in use ${after.inUseBytes} after dispose vs ${before.inUseBytes} before`);
  assert.ok(after.cachedBytes > 0, 'freed blocks are cached for reuse');
});

life('a forgotten DeviceTensor is freed by its finalizer', async () => {
  if (!gc) return;  // run-tests passes --expose-gc
  gc();
  await tick();
  const before = cudaMemoryStats().inUseBytes;
  for (let i = 0; i < 10; i++) await toDevice(randomTensor(rng(41200 + i), [1 << 20], 'float32'));  // 4 MiB each, dropped
  for (let i = 0; i < 5 && cudaMemoryStats().inUseBytes > before; i++) { gc(); await tick(); }
  assert.ok(cudaMemoryStats().inUseBytes <= before, `in use ${cudaMemoryStats().inUseBytes} > ${before} after GC`);
});

life('out of device memory is ERR_FMHA_OOM (after emptying the cache), and the device still works', async () => {
  const pool = new DevicePool();
  try {
    const packed = await pool.up(randomTensor(rng(41300), [4, 16, 128], 'float16'));
    const huge = 2 ** 31 - 1;  // [1, 2^31 − 1, 16, 128] float16: 8 TiB
    assertFmhaError(catchSync(() => unpackSequences(packed, new Int32Array([0, 4]), huge)), 'ERR_FMHA_OOM', [/out of memory|bytes/], 'huge unpack');
    const { q, k, v } = randomQKV(41301, { B: 1, Sq: 9, Sk: 9, Hq: 2, D: 64, dtype: 'float16' });
    const out = pool.keep(await attention(await pool.up(q), await pool.up(k), await pool.up(v)));
    checkResult('after OOM', { out: await out.toHost() }, q, k, v, {});
  } finally {
    pool.dispose();
  }
});
life.run();

// ---------------------------------------------------------------------------
const rules = suite('one side per call, backends');

rules('host/device mixing is ERR_FMHA_ARGUMENT, in every position, sync and async', async () => {
  const { q, k, v } = randomQKV(42000, { B: 2, Sq: 5, Sk: 6, Hq: 2, D: 64, dtype: 'float16' });
  const pool = new DevicePool();
  try {
    const [dq, dk, dv] = [await pool.up(q), await pool.up(k), await pool.up(v)];
    const bias = randomTensor(rng(42001), [2, 2, 5, 6], 'float16');
    const out = randomTensor(rng(42002), [2, 5, 2, 64], 'float16');
    const cases: [string, () => Promise<unknown>, RegExp][] = [
      ['device q, host k', () => attention(dq, k as never, dv), /k is a host Tensor but q is a DeviceTensor/],
      ['host q, device v', () => attention(q, k, dv as never), /v is a DeviceTensor on CUDA device 0 but q is a host Tensor/],
      ['host bias', () => attention(dq, dk, dv, { bias: bias as never }), /opts.bias is a host Tensor/],
      ['device bias, host q', async () => attention(q, k, v, { bias: await pool.up(bias) as never }), /opts.bias is a DeviceTensor/],
      ['host out', () => attention(dq, dk, dv, { out: out as never }), /opts.out is a host Tensor/],
      ['device out, host q', async () => attention(q, k, v, { out: await pool.up(out) as never }), /opts.out is a DeviceTensor/],
    ];
    for (const [name, call, re] of cases) assertFmhaError(await catchAsync(call, name), 'ERR_FMHA_ARGUMENT', [re], name);
    assertFmhaError(catchSync(() => attentionSync(dq, k as never, dv)), 'ERR_FMHA_ARGUMENT', [/one side/], 'sync');
  } finally {
    pool.dispose();
  }
});

rules("backend 'cpu' on DeviceTensors is ERR_FMHA_BACKEND; 'cuda' and 'auto' compute on the device", async () => {
  const { q, k, v } = randomQKV(42100, { B: 1, Sq: 33, Sk: 40, Hq: 2, D: 128, dtype: 'bfloat16' });
  const pool = new DevicePool();
  try {
    const [dq, dk, dv] = [await pool.up(q), await pool.up(k), await pool.up(v)];
    assertFmhaError(await catchAsync(() => attention(dq, dk, dv, { backend: 'cpu' })), 'ERR_FMHA_BACKEND', [/'cpu'/], 'cpu');
    for (const backend of ['cuda', 'auto', undefined] as const) {
      const o = pool.keep(await attention(dq, dk, dv, { backend, causal: true }));
      checkResult(`backend ${backend}`, { out: await o.toHost() }, q, k, v, { causal: true });
    }
  } finally {
    pool.dispose();
  }
});

rules('functions without a device path say so: decodeAttention, toFloat32-based conversions → ERR_FMHA_BACKEND', async () => {
  const pool = new DevicePool();
  try {
    const q = await pool.up(randomTensor(rng(42200), [2, 4, 64], 'float16'));
    const cache = randomTensor(rng(42201), [2, 16, 4, 64], 'float16');
    assertFmhaError(await catchAsync(() => decodeAttention(q as never, cache, cache, new Int32Array([3, 4]))),
      'ERR_FMHA_BACKEND', [/DeviceTensor/], 'decode');
  } finally {
    pool.dispose();
  }
});

rules('attentionSync on DeviceTensors only enqueues; toHost waits for the work', async () => {
  const { q, k, v } = randomQKV(42300, { B: 2, Sq: 1024, Sk: 1024, Hq: 8, D: 128, dtype: 'float16' });
  const pool = new DevicePool();
  try {
    const [dq, dk, dv] = [await pool.up(q), await pool.up(k), await pool.up(v)];
    const outs = Array.from({ length: 10 }, () => pool.keep(attentionSync(dq, dk, dv, { causal: true })));
    const last = await outs[9]!.toHost();
    checkResult('last of 10 enqueued', { out: last }, q, k, v, { causal: true });
    assert.ok(bitwiseEqual((await outs[0]!.toHost()).data, last.data), 'first == last');
    const p = packSequences(dq, [1024, 7]);
    pool.keep(p.packed);
    const u = pool.keep(unpackSequences(p.packed, p.cuSeqlens, 1024));
    const uh = await u.toHost();
    assert.ok(bitwiseEqual(uh.data.subarray(0, 1024 * 8 * 128), q.data.subarray(0, 1024 * 8 * 128)), 'pack → unpack round trip, sequence 0');
  } finally {
    pool.dispose();
  }
});
rules.run();
