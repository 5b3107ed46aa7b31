// Runs inside a worker_thread for worker.test.ts: loads the package, computes
// what the parent asks, posts the result back. Not a suite (no .test suffix).
import { parentPort, workerData } from 'node:worker_threads';
import { attention, attentionSync, vanillaAttention, Tensor, backends, type DType } from '../lib/index.js';

interface Job {
  id: number;
  kind: 'fused' | 'vanilla';
  mode: 'sync' | 'async';
  dtype: DType;
  q: { data: Float32Array | Uint16Array; shape: number[] };
  k: { data: Float32Array | Uint16Array; shape: number[] };
  v: { data: Float32Array | Uint16Array; shape: number[] };
  causal: boolean;
  repeat?: number;
}

const port = parentPort!;
port.postMessage({ type: 'ready', backends: backends(), workerData });

port.on('message', async (job: Job) => {
  try {
    const q = new Tensor(job.dtype, job.q.data, job.q.shape);
    const k = new Tensor(job.dtype, job.k.data, job.k.shape);
    const v = new Tensor(job.dtype, job.v.data, job.v.shape);
    let res;
    for (let i = 0; i < (job.repeat ?? 1); i++) {
      res = job.mode === 'sync'
        ? attentionSync(q, k, v, { causal: job.causal, returnLse: true })
        : await (job.kind === 'fused' ? attention : vanillaAttention)(q, k, v, { causal: job.causal, returnLse: true });
    }
    port.postMessage({ type: 'result', id: job.id, out: res!.out.data, outShape: [...res!.out.shape], lse: res!.lse.data });
  } catch (err) {
    const e = err as { name?: string; code?: string; message?: string };
    port.postMessage({ type: 'error', id: job.id, name: e.name, code: e.code, message: e.message });
  }
});
