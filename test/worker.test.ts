// worker_threads: the package loads and computes in a worker; results match the
// main thread bitwise (same inputs and thread count) and the reference; workers
// run alongside the main thread (fused and varlen, sync and async); terminating
// a worker mid-call (fused or varlen) crashes nothing.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { attention, attentionSync, vanillaAttentionSync, varlenAttention, varlenAttentionSync, Tensor, type DType } from '../lib/index.js';
import { bitwiseEqual, referenceVarlen } from './reference.js';
import { randomQKV, checkResult, describe, randomPackedBatch, checkVarlen, type PackedBatch } from './helpers.js';

const helper = fileURLToPath(new URL('./worker-helper.js', import.meta.url));

interface Reply {
  type: string; id?: number; out?: Float32Array | Uint16Array; outShape?: number[]; lse?: Float32Array; lseShape?: number[];
  name?: string; code?: string; message?: string; backends?: unknown;
}

interface Job { id: number }

/** `ask` resolves with the job's result or error; `started` once the worker is about to make the call. */
function startWorker(): Promise<{ w: Worker; ask: (job: Job) => Promise<Reply>; started: (id: number) => Promise<void>; backends: unknown }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(helper);
    const pending = new Map<number, (r: Reply) => void>();
    const starts = new Map<number, () => void>();
    const startedIds = new Set<number>();
    w.on('error', reject);
    w.on('message', (m: Reply) => {
      if (m.type === 'ready') {
        resolve({
          w, backends: m.backends,
          ask: (job) => new Promise<Reply>((res) => { pending.set(job.id, res); w.postMessage(job); }),
          started: (id) => new Promise<void>((res) => { if (startedIds.has(id)) res(); else starts.set(id, res); }),
        });
        return;
      }
      if (m.type === 'started') {
        startedIds.add(m.id!);
        starts.get(m.id!)?.();
        return;
      }
      pending.get(m.id!)?.(m);
      pending.delete(m.id!);
    });
  });
}

const pack = (x: { data: Float32Array | Uint16Array; shape: readonly number[] }) => ({ data: x.data, shape: [...x.shape] });

function job(id: number, kind: 'fused' | 'vanilla', mode: 'sync' | 'async', dtype: DType, t: ReturnType<typeof randomQKV>, causal: boolean, repeat = 1) {
  return { id, kind, mode, dtype, q: pack(t.q), k: pack(t.k), v: pack(t.v), causal, repeat };
}

function varlenJob(id: number, mode: 'sync' | 'async', b: PackedBatch, causal: boolean, repeat = 1) {
  return { id, kind: 'varlen', mode, dtype: b.q.dtype, q: pack(b.q), k: pack(b.k), v: pack(b.v), cuQ: b.cuQ, cuK: b.cuK, causal, repeat };
}

/** A worker's varlen reply against the main thread's result (bitwise) and the float64 reference. */
function checkVarlenReply(label: string, r: Reply, b: PackedBatch, causal: boolean): void {
  assert.is(r.type, 'result', `${label}: ${r.name} ${r.code} ${r.message}`);
  const res = { out: new Tensor(b.q.dtype, r.out!, r.outShape!), lse: new Tensor('float32', r.lse!, r.lseShape!) };
  const main = varlenAttentionSync(b.q, b.k, b.v, { cuSeqlensQ: b.cuQ, cuSeqlensK: b.cuK, causal, returnLse: true });
  assert.ok(bitwiseEqual(res.out.data, main.out.data) && bitwiseEqual(res.lse.data, main.lse.data), `${label}: worker == main thread, bitwise`);
  checkVarlen(label, res, referenceVarlen(b.q, b.k, b.v, b.cuQ, b.cuK, { causal }), b.q.dtype);
}

const w = suite('worker_threads');

w('a worker loads the package, computes, and matches the main thread bitwise', async () => {
  const { w: worker, ask, backends } = await startWorker();
  try {
    assert.ok(backends && typeof backends === 'object', 'backends() works in a worker');
    let id = 0;
    for (const dtype of ['float32', 'bfloat16'] as DType[]) {
      const t = randomQKV(10000, { B: 2, Sq: 77, Sk: 130, Hq: 4, Hkv: 2, D: 64, dtype });
      for (const [kind, mode] of [['fused', 'async'], ['fused', 'sync'], ['vanilla', 'async']] as const) {
        const r = await ask(job(id++, kind, mode, dtype, t, true));
        assert.is(r.type, 'result', `worker ${kind}/${mode}: ${r.name} ${r.code} ${r.message}`);
        const main = kind === 'fused' ? attentionSync(t.q, t.k, t.v, { causal: true, returnLse: true })
          : vanillaAttentionSync(t.q, t.k, t.v, { causal: true, returnLse: true });
        assert.equal(r.outShape, [...main.out.shape]);
        assert.ok(bitwiseEqual(r.out!, main.out.data), `${dtype} ${kind}/${mode}: worker out == main out, bitwise`);
        assert.ok(bitwiseEqual(r.lse!, main.lse.data), `${dtype} ${kind}/${mode}: worker lse == main lse, bitwise`);
        checkResult(`worker ${dtype} ${kind}/${mode}`, main, t.q, t.k, t.v, { causal: true });
      }
    }
  } finally {
    await worker.terminate();
  }
});

w('two workers and the main thread compute at the same time', async () => {
  const workers = await Promise.all([startWorker(), startWorker()]);
  try {
    const t = randomQKV(10100, { B: 1, Sq: 300, Sk: 300, Hq: 4, D: 64 });
    const expected = attentionSync(t.q, t.k, t.v, { causal: true, returnLse: true });
    const [a, b, c] = await Promise.all([
      workers[0]!.ask(job(1, 'fused', 'async', 'float32', t, true, 3)),
      workers[1]!.ask(job(2, 'fused', 'sync', 'float32', t, true, 3)),
      attention(t.q, t.k, t.v, { causal: true, returnLse: true }),
    ]);
    for (const r of [a, b]) {
      assert.is(r.type, 'result', `${r.name} ${r.code} ${r.message}`);
      assert.ok(bitwiseEqual(r.out!, expected.out.data), 'worker result bitwise equal');
    }
    assert.ok(bitwiseEqual(c.out.data, expected.out.data), 'main async result bitwise equal');
    checkResult('concurrent workers', expected, t.q, t.k, t.v, { causal: true });
  } finally {
    await Promise.all(workers.map((x) => x.w.terminate()));
  }
});

w('terminating a worker mid-call crashes nothing; the main thread keeps working', async () => {
  const { w: worker, ask } = await startWorker();
  const t = randomQKV(10200, { B: 1, Sq: 2048, Sk: 2048, Hq: 4, D: 64 });
  void ask(job(1, 'fused', 'async', 'float32', t, false, 2)).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 30));
  await worker.terminate();
  const s = randomQKV(10201, { B: 1, Sq: 40, Sk: 40, Hq: 2, D: 32 });
  const res = await attention(s.q, s.k, s.v, { returnLse: true });
  checkResult('after a worker was terminated', res, s.q, s.k, s.v, {});
  // and a new worker can load the addon again
  const again = await startWorker();
  try {
    const r = await again.ask(job(2, 'fused', 'async', 'float32', s, false));
    assert.is(r.type, 'result', describe(r));
    assert.ok(bitwiseEqual(r.out!, res.out.data));
  } finally {
    await again.w.terminate();
  }
});

w('three workers run varlenAttention and varlenAttentionSync at once, beside the main thread, on ragged batches', async () => {
  const workers = await Promise.all([startWorker(), startWorker(), startWorker()]);
  try {
    const batches = [
      randomPackedBatch(10400, { lq: [130, 0, 77, 1, 200], lk: [130, 5, 90, 1, 200], Hq: 4, Hkv: 2, D: 64 }),
      randomPackedBatch(10401, { lq: [0, 64, 300, 3], Hq: 2, D: 40, dtype: 'bfloat16' }),
      randomPackedBatch(10402, { lq: [17, 250, 0, 0, 33], lk: [40, 250, 9, 0, 33], Hq: 6, Hkv: 3, D: 32, dtype: 'float16', extraQ: 3 }),
    ];
    const causal = [true, false, true];
    let id = 0;
    const asks = workers.flatMap((wk, i) => (['async', 'sync'] as const).map((mode) => {
      const n = id++, b = batches[i]!;
      return wk.ask(varlenJob(n, mode, b, causal[i]!, 2)).then((r) => ({ r, label: `worker ${i} ${b.q.dtype} ${mode}`, i }));
    }));
    const mainAsync = varlenAttention(batches[0]!.q, batches[0]!.k, batches[0]!.v,
      { cuSeqlensQ: batches[0]!.cuQ, cuSeqlensK: batches[0]!.cuK, causal: true, returnLse: true });
    const [replies, main] = await Promise.all([Promise.all(asks), mainAsync]);
    for (const { r, label, i } of replies) checkVarlenReply(label, r, batches[i]!, causal[i]!);
    checkVarlen('main thread async, beside the workers', main, referenceVarlen(batches[0]!.q, batches[0]!.k, batches[0]!.v, batches[0]!.cuQ, batches[0]!.cuK, { causal: true }), 'float32');
  } finally {
    await Promise.all(workers.map((x) => x.w.terminate()));
  }
});

w('terminating a worker while its varlenAttention call is in flight crashes nothing', async () => {
  const { w: worker, ask, started } = await startWorker();
  const big = randomPackedBatch(10500, { lq: [1500, 0, 1200, 7], Hq: 4, D: 64 });
  void ask(varlenJob(1, 'async', big, false, 3)).catch(() => undefined);
  await started(1);
  await new Promise((r) => setTimeout(r, 5));
  await worker.terminate();
  const small = randomPackedBatch(10501, { lq: [9, 0, 30], Hq: 2, D: 32 });
  const res = await varlenAttention(small.q, small.k, small.v, { cuSeqlensQ: small.cuQ, cuSeqlensK: small.cuK, causal: true, returnLse: true });
  checkVarlen('after a worker was terminated', res, referenceVarlen(small.q, small.k, small.v, small.cuQ, small.cuK, { causal: true }), 'float32');
  const again = await startWorker();
  try {
    checkVarlenReply('a new worker', await again.ask(varlenJob(2, 'async', small, true)), small, true);
  } finally {
    await again.w.terminate();
  }
});

w('an error in a worker is an FmhaError there too', async () => {
  const { w: worker, ask } = await startWorker();
  try {
    const t = randomQKV(10300, { B: 1, Sq: 4, Sk: 4, Hq: 3, Hkv: 3, D: 8 });
    const bad = { ...job(1, 'fused', 'async', 'float32', t, false), k: { data: t.k.data.subarray(0, 4 * 2 * 8), shape: [1, 4, 2, 8] } };
    const bad2 = { ...bad, v: { data: t.v.data.subarray(0, 4 * 2 * 8), shape: [1, 4, 2, 8] } };
    const r = await ask(bad2); // Hq = 3 not divisible by Hkv = 2
    assert.is(r.type, 'error');
    assert.is(r.name, 'FmhaError');
    assert.is(r.code, 'ERR_FMHA_SHAPE');
  } finally {
    await worker.terminate();
  }
});
w.run();
