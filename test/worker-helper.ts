// Runs inside a worker_thread for worker.test.ts: loads the package, computes
// what the parent asks, posts the result back. Not a suite (no .test suffix).
import { parentPort, workerData } from 'node:worker_threads';
import {
  attention, attentionSync, vanillaAttention, vanillaAttentionSync, varlenAttention, varlenAttentionSync, Tensor, backends,
  type AttentionWithLse, type DType,
} from '../lib/index.js';

interface Job {
  id: number;
  kind: 'fused' | 'vanilla' | 'varlen';
  mode: 'sync' | 'async';
  dtype: DType;
  q: { data: Float32Array | Uint16Array; shape: number[] };
  k: { data: Float32Array | Uint16Array; shape: number[] };
  v: { data: Float32Array | Uint16Array; shape: number[] };
  causal: boolean;
  repeat?: number;
  /** varlen: the packed batch's prefix sums. */
  cuQ?: Int32Array;
  cuK?: Int32Array;
}

function compute(job: Job, q: Tensor, k: Tensor, v: Tensor): AttentionWithLse | Promise<AttentionWithLse> {
  const opts = { causal: job.causal, returnLse: true as const };
  const sync = job.mode === 'sync';
  if (job.kind === 'varlen') {
    const o = { ...opts, cuSeqlensQ: job.cuQ!, cuSeqlensK: job.cuK! };
    return sync ? varlenAttentionSync(q, k, v, o) : varlenAttention(q, k, v, o);
  }
  if (job.kind === 'vanilla') return sync ? vanillaAttentionSync(q, k, v, opts) : vanillaAttention(q, k, v, opts);
  return sync ? attentionSync(q, k, v, opts) : attention(q, k, v, opts);
}

const port = parentPort!;
port.postMessage({ type: 'ready', backends: backends(), workerData });

port.on('message', async (job: Job) => {
  try {
    const q = new Tensor(job.dtype, job.q.data, job.q.shape);
    const k = new Tensor(job.dtype, job.k.data, job.k.shape);
    const v = new Tensor(job.dtype, job.v.data, job.v.shape);
    // the parent may terminate this worker once it knows a call is in flight
    port.postMessage({ type: 'started', id: job.id });
    let res: AttentionWithLse | undefined;
    for (let i = 0; i < (job.repeat ?? 1); i++) res = await compute(job, q, k, v);
    port.postMessage({ type: 'result', id: job.id, out: res!.out.data, outShape: [...res!.out.shape], lse: res!.lse.data, lseShape: [...res!.lse.shape] });
  } catch (err) {
    const e = err as { name?: string; code?: string; message?: string };
    port.postMessage({ type: 'error', id: job.id, name: e.name, code: e.code, message: e.message });
  }
});
