// The CPU suites' comparisons, run on the CUDA backend. A call reaches the
// kernels two ways, and the GPU suites use both:
//   'host'   — host tensors with backend: 'cuda' (the binding copies in and out);
//   'device' — toDevice() every tensor, call on DeviceTensors, toHost() the results.
// Results are checked by helpers.checkResult against the same float64
// reference and DESIGN bounds as the CPU suites.
import * as assert from 'uvu/assert';
import {
  Tensor, DeviceTensor, toDevice, attention, attentionSync, vanillaAttention, vanillaAttentionSync,
  varlenAttention, varlenAttentionSync, backends,
  type AttentionOptions, type AttentionWithLse, type VarlenAttentionOptions, type DType,
} from '../lib/index.js';
import { rng, randomNormal, product } from './reference.js';
import { run, checkResult, type Kind, type Mode } from './helpers.js';

export type Via = 'host' | 'device';
export const VIAS: readonly Via[] = ['host', 'device'];
export const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16'];
/** The head dims with fast kernels, and an odd one that takes the general kernel. */
export const HEAD_DIMS: readonly number[] = [32, 64, 96, 128, 192, 256, 40];

/** Throws (so the suite fails, never skips) when no CUDA device is usable. */
export function requireCuda(): void {
  const c = backends().cuda;
  if (!c.available) throw new Error(`GPU suite run without CUDA: ${c.reason}`);
}

type AnyFn = (q: unknown, k: unknown, v: unknown, o: unknown) => unknown;
const FNS: Record<Kind, Record<Mode, AnyFn>> = {
  fused: { sync: attentionSync as AnyFn, async: attention as AnyFn },
  vanilla: { sync: vanillaAttentionSync as AnyFn, async: vanillaAttention as AnyFn },
};

/** Copies host tensors to the device, tracking them for disposal. */
export class DevicePool {
  readonly held: DeviceTensor[] = [];
  async up(t: Tensor): Promise<DeviceTensor> {
    const d = await toDevice(t);
    this.held.push(d);
    return d;
  }
  keep<T extends DeviceTensor | undefined>(d: T): T {
    if (d) this.held.push(d);
    return d;
  }
  dispose(): void {
    for (const d of this.held) d.dispose();
    this.held.length = 0;
  }
}

/**
 * Runs fused or vanilla attention on the CUDA backend, with returnLse, and
 * returns host tensors. With `opts.out` (a host Tensor, e.g. NaN-poisoned) the
 * 'device' path uploads it and checks that the call resolves to that DeviceTensor.
 */
export async function runCuda(kind: Kind, mode: Mode, via: Via, q: Tensor, k: Tensor, v: Tensor,
  opts: AttentionOptions = {}): Promise<AttentionWithLse> {
  if (via === 'host') return run(kind, mode, q, k, v, { ...opts, backend: 'cuda' });
  const pool = new DevicePool();
  try {
    const [dq, dk, dv] = [await pool.up(q), await pool.up(k), await pool.up(v)];
    const dopts: AttentionOptions<DeviceTensor> = { ...opts, bias: undefined, out: undefined, returnLse: true };
    if (opts.bias) dopts.bias = await pool.up(opts.bias);
    if (opts.out) dopts.out = await pool.up(opts.out);
    const r = await FNS[kind][mode](dq, dk, dv, dopts) as AttentionWithLse<DeviceTensor>;
    assert.instance(r.out, DeviceTensor, 'a call on DeviceTensors returns DeviceTensors');
    assert.instance(r.lse, DeviceTensor, 'lse is a DeviceTensor');
    if (dopts.out) assert.ok(r.out === dopts.out, 'resolves to the given out DeviceTensor');
    else pool.keep(r.out);
    pool.keep(r.lse);
    return { out: await r.out.toHost(), lse: await r.lse.toHost() };
  } finally {
    pool.dispose();
  }
}

/** runCuda, then checkResult against the float64 reference. */
export async function runAndCheckCuda(label: string, kind: Kind, mode: Mode, via: Via, q: Tensor, k: Tensor, v: Tensor,
  opts: AttentionOptions = {}): Promise<AttentionWithLse> {
  const res = await runCuda(kind, mode, via, q, k, v, opts);
  const { out: _out, ...refOpts } = opts;
  checkResult(`${label} [cuda ${kind}/${mode}/${via}]`, res, q, k, v, refOpts);
  return res;
}

/** varlenAttention on the CUDA backend, with returnLse, returning host tensors. */
export async function runVarlenCuda(mode: Mode, via: Via, q: Tensor, k: Tensor, v: Tensor,
  opts: VarlenAttentionOptions): Promise<AttentionWithLse> {
  const o = { ...opts, returnLse: true as const };
  if (via === 'host') {
    const h = { ...o, backend: 'cuda' as const };
    return mode === 'sync' ? varlenAttentionSync(q, k, v, h) : varlenAttention(q, k, v, h);
  }
  const pool = new DevicePool();
  try {
    const [dq, dk, dv] = [await pool.up(q), await pool.up(k), await pool.up(v)];
    const dopts: VarlenAttentionOptions<DeviceTensor> & { returnLse: true } = { ...o, out: undefined };
    if (opts.out) dopts.out = await pool.up(opts.out);
    const r = mode === 'sync' ? varlenAttentionSync(dq, dk, dv, dopts) : await varlenAttention(dq, dk, dv, dopts);
    if (dopts.out) assert.ok(r.out === dopts.out, 'resolves to the given out DeviceTensor');
    else pool.keep(r.out);
    pool.keep(r.lse);
    return { out: await r.out.toHost(), lse: await r.lse.toHost() };
  } finally {
    pool.dispose();
  }
}

/** A bias [bB, bH, Sq, Sk] of normal values with ~10% −Infinity and one fully masked row (as options.test.ts). */
export function makeBias(seed: number, shape: [number, number, number, number], dtype: DType = 'float32', fullRow = 1): Tensor {
  const r = rng(seed);
  const vals = randomNormal(product(shape), r);
  for (let i = 0; i < vals.length; i++) if (r() < 0.1) vals[i] = -Infinity;
  const Sk = shape[3];
  if (fullRow >= 0 && fullRow < shape[2]) for (let j = 0; j < Sk; j++) vals[fullRow * Sk + j] = -Infinity;
  return Tensor.fromFloat32(vals, shape, dtype);
}
