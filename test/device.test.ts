// Device tensors and backend 'cuda' where there may be no GPU (this suite runs
// everywhere; the *.gpu.test.ts suites compute on a GPU). Without CUDA,
// toDevice and backend 'cuda' are ERR_FMHA_BACKEND with backends().cuda.reason;
// argument errors come first either way; look-alike DeviceTensors are not ones.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Tensor, DeviceTensor, toDevice, attention, attentionSync, vanillaAttention, vanillaAttentionSync,
  varlenAttention, varlenAttentionSync, packSequences, backends, cudaMemoryStats,
} from '../lib/index.js';
import { rng } from './reference.js';
import { randomQKV, randomTensor, assertFmhaError, catchAsync, catchSync, checkResult } from './helpers.js';

const cuda = backends().cuda;
const noCuda = (why: string) => (cuda.available ? `CUDA is available here (${why} runs in the GPU suites)` : undefined);
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// ---------------------------------------------------------------------------
const without = suite('without CUDA: ERR_FMHA_BACKEND with the reason');

without('toDevice rejects (never throws) with ERR_FMHA_BACKEND naming backends().cuda.reason', async () => {
  if (noCuda('toDevice')) return;
  const t = randomTensor(rng(50000), [2, 3, 4], 'float16');
  for (const opts of [undefined, {}, { device: 0 }]) {
    const err = await catchAsync(() => toDevice(t, opts), 'toDevice');
    assertFmhaError(err, 'ERR_FMHA_BACKEND', [/toDevice/, new RegExp(escape(cuda.reason!))], `toDevice(${JSON.stringify(opts)})`);
  }
});

without("backend 'cuda' on host tensors: Promise forms reject, Sync forms throw, ERR_FMHA_BACKEND with the reason", async () => {
  if (noCuda("backend 'cuda'")) return;
  const { q, k, v } = randomQKV(50100, { B: 1, Sq: 4, Sk: 4, Hq: 2, D: 8 });
  const re = [/opts.backend 'cuda' is not available/, new RegExp(escape(cuda.reason!))];
  for (const fn of [attention, vanillaAttention]) {
    assertFmhaError(await catchAsync(() => fn(q, k, v, { backend: 'cuda' }), fn.name), 'ERR_FMHA_BACKEND', re, fn.name);
  }
  for (const fn of [attentionSync, vanillaAttentionSync]) {
    assertFmhaError(catchSync(() => fn(q, k, v, { backend: 'cuda' })), 'ERR_FMHA_BACKEND', re, fn.name);
  }
  const pq = new Tensor('float32', q.data, [4, 2, 8]);
  const pk = new Tensor('float32', k.data, [4, 2, 8]);
  const cu = new Int32Array([0, 4]);
  const vo = { cuSeqlensQ: cu, cuSeqlensK: cu, backend: 'cuda' as const };
  assertFmhaError(await catchAsync(() => varlenAttention(pq, pk, pk, vo), 'varlen'), 'ERR_FMHA_BACKEND', re, 'varlenAttention');
  assertFmhaError(catchSync(() => varlenAttentionSync(pq, pk, pk, vo)), 'ERR_FMHA_BACKEND', re, 'varlenAttentionSync');
});

without("backends 'auto' and 'cpu' on host tensors still compute on the CPU", async () => {
  const { q, k, v } = randomQKV(50200, { B: 1, Sq: 9, Sk: 9, Hq: 2, D: 16 });
  for (const backend of ['auto', 'cpu'] as const) {
    checkResult(backend, await attention(q, k, v, { backend, returnLse: true }), q, k, v, {});
  }
});

without('cudaMemoryStats is all zero', () => {
  if (noCuda('cudaMemoryStats')) return;
  assert.equal(cudaMemoryStats(), { inUseBytes: 0, cachedBytes: 0, mallocCalls: 0, mallocRetries: 0 });
});
without.run();

// ---------------------------------------------------------------------------
const args = suite('toDevice and DeviceTensor: argument errors and look-alikes');

args('toDevice validates its tensor first (ERR_FMHA_DTYPE / ERR_FMHA_SHAPE), then the device index', async () => {
  const t = randomTensor(rng(50300), [2, 2], 'float32');
  assertFmhaError(await catchAsync(() => toDevice({} as Tensor), 'empty object'), 'ERR_FMHA_DTYPE', [/tensor/], 'not a tensor');
  assertFmhaError(await catchAsync(() => toDevice(new Float32Array(4) as unknown as Tensor), 'typed array'), 'ERR_FMHA_DTYPE', [/Tensor/], 'typed array');
  for (const device of [-1, 1.5, NaN, '0'] as unknown[]) {
    assertFmhaError(await catchAsync(() => toDevice(t, { device: device as number }), `device ${String(device)}`), 'ERR_FMHA_ARGUMENT',
      [/opts.device/], `device ${String(device)}`);
  }
});

args('an object shaped like a DeviceTensor, or one with a forged handle, is not a tensor (ERR_FMHA_DTYPE)', async () => {
  const { q, k, v } = randomQKV(50400, { B: 1, Sq: 4, Sk: 4, Hq: 2, D: 8 });
  const fakes: unknown[] = [
    { dtype: 'float32', shape: [1, 4, 2, 8], device: 0, handle: {} },
    { dtype: 'float32', shape: [1, 4, 2, 8], device: 0, handle: 12345 },
    new DeviceTensor({} as never, 'float32', [1, 4, 2, 8], 0),
  ];
  for (const [i, fake] of fakes.entries()) {
    assertFmhaError(await catchAsync(() => attention(fake as Tensor, k, v), `fake ${i}`), 'ERR_FMHA_DTYPE', [/q must be a Tensor/], `fake ${i} as q`);
    assertFmhaError(catchSync(() => attentionSync(q, k, v, { bias: fake as Tensor })), 'ERR_FMHA_DTYPE', [/opts.bias must be a Tensor/], `fake ${i} as bias`);
    assertFmhaError(catchSync(() => packSequences(fake as Tensor, [1])), 'ERR_FMHA_DTYPE', [/padded must be a Tensor/], `fake ${i} padded`);
  }
  const forged = fakes[2] as DeviceTensor;
  assertFmhaError(await catchAsync(() => forged.toHost(), 'toHost'), 'ERR_FMHA_DTYPE', [/tensor must be a Tensor/], 'toHost of a forged one');
  assertFmhaError(catchSync(() => forged.dispose()), 'ERR_FMHA_ARGUMENT', [/handle/], 'dispose of a forged one');
});
args.run();
