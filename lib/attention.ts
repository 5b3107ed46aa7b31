import { native, type AttentionKind, type NativeAttentionOptions, type NativeAttentionResult, type NativeDeviceHandle, type TensorData } from './native.js';
import { Tensor } from './tensor.js';
import { DeviceTensor, wrapDeviceOutput } from './device.js';

/** A host Tensor or a DeviceTensor: a call's tensors are all one or all the other. */
export type AnyTensor = Tensor | DeviceTensor;

/**
 * Options shared by every attention call (DESIGN §3). The score pipeline runs in
 * this order: `s = (q·k)·scale`; softcap; ALiBi; bias; masks (causal, window,
 * seqlensK) exclude keys; `p = softmax(s)` over visible keys; `out = p·v`.
 * Indices below: query row i in [0, Sq), key j in [0, Sk), offset = Sk − Sq.
 */
export interface AttentionOptions<T extends AnyTensor = Tensor> {
  /** Mask keys after the query, aligned bottom-right: row i sees key j iff j ≤ i + Sk − Sq. Default false. */
  causal?: boolean;
  /** Multiplies q·k. Default 1/√D. Must be finite. */
  scale?: number;
  /** `[left, right]` sliding window: i + Sk − Sq − left ≤ j ≤ i + Sk − Sq + right; −1 = unbounded. Default [−1, −1]. */
  window?: readonly [number, number];
  /** `s = softcap · tanh(s / softcap)`; 0 = off. Must be finite and ≥ 0. Default 0. */
  softcap?: number;
  /** Float32Array(Hq): adds `−slope[h] · |i + Sk − Sq − j|` to the scores. */
  alibiSlopes?: Float32Array;
  /** Int32Array(B), key padding: keys at j ≥ seqlensK[b] are masked (Sk in the alignment stays k's length). */
  seqlensK?: Int32Array;
  /** Additive score bias `[B or 1, Hq or 1, Sq, Sk]`, q's dtype, contiguous, on q's side; −Infinity masks a key. */
  bias?: T;
  /** Also return lse = log Σ exp(s) over visible keys, natural log, float32 `[B, Hq, Sq]`. */
  returnLse?: boolean;
  /** Preallocated contiguous output `[B, Sq, Hq, Dv]` in q's dtype, on q's side, not overlapping an input; the call resolves to this object. */
  out?: T;
  /**
   * Where to compute: 'auto' (where the tensors live), 'cpu' or 'cuda'. Default 'auto'.
   * 'cuda' on host tensors copies them to device 0, computes there and copies the results back;
   * 'cpu' on DeviceTensors → ERR_FMHA_BACKEND.
   */
  backend?: 'auto' | 'cpu' | 'cuda';
  /** Checked between tiles; an aborted call rejects with an `AbortError`. */
  signal?: AbortSignal;
}

/** Output with the log-sum-exp of each row: `out [B, Sq, Hq, Dv]`, `lse` float32 `[B, Hq, Sq]` (DeviceTensors for a call on DeviceTensors). */
export interface AttentionWithLse<T extends AnyTensor = Tensor> {
  out: T;
  lse: T;
}

/** What lib/ reads of any call's options (attention, varlen, decode); the binding reads the rest. */
interface CallOptions {
  out?: AnyTensor;
  returnLse?: boolean;
  signal?: AbortSignal;
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

function toNativeOptions<O extends CallOptions>(opts: O, abortFlag?: Int32Array): Omit<O, 'signal'> & { abortFlag?: Int32Array } {
  if (typeof opts !== 'object') return opts;  // not an object: the binding's to refuse
  const { signal: _signal, ...rest } = opts;
  return abortFlag ? { ...rest, abortFlag } : rest;
}

// Outputs of a call on DeviceTensors come back as handles with r.device set.
function wrapResult<T extends AnyTensor>(r: NativeAttentionResult, q: T, opts: CallOptions): T | AttentionWithLse<T> {
  const wrap = (data: TensorData | NativeDeviceHandle, dtype: Tensor['dtype'], shape: number[]): AnyTensor =>
    r.device === undefined ? new Tensor(dtype, data as TensorData, shape) : wrapDeviceOutput(data as NativeDeviceHandle, dtype, shape, r.device);
  const out = (opts.out ?? wrap(r.out, q.dtype, r.outShape)) as T;
  if (!opts.returnLse) return out;
  return { out, lse: wrap(r.lse!, 'float32', r.lseShape!) as T };
}

// The one calling convention of every attention-like function (shared with
// lib/varlen.ts and lib/decode.ts; not public API). `opts` may be undefined or
// null (no options); anything else goes to the binding to validate. `invoke`
// calls the addon with the options as it takes them.
export function callSync<O extends CallOptions, T extends AnyTensor = Tensor>(q: T, options: O | null | undefined,
                                                invoke: (o: Omit<O, 'signal'>) => NativeAttentionResult): T | AttentionWithLse<T> {
  const opts = options ?? ({} as O);
  if (opts.signal?.aborted) throw abortError(opts.signal);
  return wrapResult(invoke(toNativeOptions(opts)), q, opts);
}

export async function callAsync<O extends CallOptions, T extends AnyTensor = Tensor>(q: T, options: O | null | undefined,
                                                       invoke: (o: Omit<O, 'signal'> & { abortFlag?: Int32Array }) => Promise<NativeAttentionResult>): Promise<T | AttentionWithLse<T>> {
  const opts = options ?? ({} as O);
  const { signal } = opts;
  if (signal?.aborted) throw abortError(signal);
  const flag = signal ? new Int32Array(1) : undefined;
  const onAbort = () => { Atomics.store(flag!, 0, 1); };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return wrapResult(await invoke(toNativeOptions(opts, flag)), q, opts);
  } catch (err) {
    if (signal?.aborted && (err as Error)?.name === 'AbortError') throw abortError(signal);
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

type AttentionCallOptions = Omit<NativeAttentionOptions, 'abortFlag' | 'out'> & CallOptions;

export function runSync(kind: AttentionKind, q: AnyTensor, k: AnyTensor, v: AnyTensor, options?: AttentionCallOptions | null): AnyTensor | AttentionWithLse<AnyTensor> {
  return callSync<AttentionCallOptions, AnyTensor>(q, options, (o) => native.attentionSync(kind, q, k, v, o));
}

export function runAsync(kind: AttentionKind, q: AnyTensor, k: AnyTensor, v: AnyTensor, options?: AttentionCallOptions | null): Promise<AnyTensor | AttentionWithLse<AnyTensor>> {
  return callAsync<AttentionCallOptions, AnyTensor>(q, options, (o) => native.attentionAsync(kind, q, k, v, o));
}

/**
 * Fused (FlashAttention-style) attention: never materializes the Sq×Sk score matrix.
 *
 * @param q `[B, Sq, Hq, D]`
 * @param k `[B, Sk, Hkv, D]`, Hq % Hkv === 0 (GQA/MQA: query head h reads kv head ⌊h / (Hq/Hkv)⌋)
 * @param v `[B, Sk, Hkv, Dv]`
 * @returns `[B, Sq, Hq, Dv]` in q's dtype; with `returnLse: true`, `{ out, lse }`.
 *   Rejects (never throws) with `FmhaError` on bad input, `AbortError` when aborted.
 *   On DeviceTensors (all of q, k, v, bias, out on one device) the results are DeviceTensors
 *   there, and the promise settles once the GPU has finished the work.
 */
export function attention(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, opts: AttentionOptions<DeviceTensor> & { returnLse: true }): Promise<AttentionWithLse<DeviceTensor>>;
export function attention(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, opts?: AttentionOptions<DeviceTensor> & { returnLse?: false }): Promise<DeviceTensor>;
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions & { returnLse: true }): Promise<AttentionWithLse>;
export function attention(q: Tensor, k: Tensor, v: Tensor, opts?: AttentionOptions & { returnLse?: false }): Promise<Tensor>;
export function attention(q: Tensor, k: Tensor, v: Tensor, opts?: AttentionOptions): Promise<Tensor | AttentionWithLse>;
export function attention(q: AnyTensor, k: AnyTensor, v: AnyTensor, opts?: AttentionOptions<AnyTensor>): Promise<AnyTensor | AttentionWithLse<AnyTensor>>;
export function attention(q: AnyTensor, k: AnyTensor, v: AnyTensor, opts?: AttentionOptions<AnyTensor>): Promise<AnyTensor | AttentionWithLse<AnyTensor>> {
  return runAsync('fused', q, k, v, opts);
}

/**
 * {@link attention} on the calling thread (which joins fmha's pool); throws instead of rejecting.
 * On DeviceTensors it only enqueues the work on the device's stream and returns the output
 * DeviceTensor at once; later calls and `toHost()` are ordered after it.
 */
export function attentionSync(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, opts: AttentionOptions<DeviceTensor> & { returnLse: true }): AttentionWithLse<DeviceTensor>;
export function attentionSync(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, opts?: AttentionOptions<DeviceTensor> & { returnLse?: false }): DeviceTensor;
export function attentionSync(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions & { returnLse: true }): AttentionWithLse;
export function attentionSync(q: Tensor, k: Tensor, v: Tensor, opts?: AttentionOptions & { returnLse?: false }): Tensor;
export function attentionSync(q: Tensor, k: Tensor, v: Tensor, opts?: AttentionOptions): Tensor | AttentionWithLse;
export function attentionSync(q: AnyTensor, k: AnyTensor, v: AnyTensor, opts?: AttentionOptions<AnyTensor>): AnyTensor | AttentionWithLse<AnyTensor>;
export function attentionSync(q: AnyTensor, k: AnyTensor, v: AnyTensor, opts?: AttentionOptions<AnyTensor>): AnyTensor | AttentionWithLse<AnyTensor> {
  return runSync('fused', q, k, v, opts);
}

/**
 * The baseline: materializes each (b, h) Sq×Sk score matrix, then softmax, then ·V.
 * Same arguments, options and results as {@link attention}. Its scratch
 * (threads × Sq × Sk × 4 bytes) is checked against `FMHA_MAX_SCRATCH_BYTES`
 * (default half of physical memory) first: too big → `ERR_FMHA_OOM`.
 */
export function vanillaAttention(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, opts: AttentionOptions<DeviceTensor> & { returnLse: true }): Promise<AttentionWithLse<DeviceTensor>>;
export function vanillaAttention(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, opts?: AttentionOptions<DeviceTensor> & { returnLse?: false }): Promise<DeviceTensor>;
export function vanillaAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions & { returnLse: true }): Promise<AttentionWithLse>;
export function vanillaAttention(q: Tensor, k: Tensor, v: Tensor, opts?: AttentionOptions & { returnLse?: false }): Promise<Tensor>;
export function vanillaAttention(q: Tensor, k: Tensor, v: Tensor, opts?: AttentionOptions): Promise<Tensor | AttentionWithLse>;
export function vanillaAttention(q: AnyTensor, k: AnyTensor, v: AnyTensor, opts?: AttentionOptions<AnyTensor>): Promise<AnyTensor | AttentionWithLse<AnyTensor>>;
export function vanillaAttention(q: AnyTensor, k: AnyTensor, v: AnyTensor, opts?: AttentionOptions<AnyTensor>): Promise<AnyTensor | AttentionWithLse<AnyTensor>> {
  return runAsync('vanilla', q, k, v, opts);
}

/** {@link vanillaAttention} on the calling thread; throws instead of rejecting. */
export function vanillaAttentionSync(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, opts: AttentionOptions<DeviceTensor> & { returnLse: true }): AttentionWithLse<DeviceTensor>;
export function vanillaAttentionSync(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, opts?: AttentionOptions<DeviceTensor> & { returnLse?: false }): DeviceTensor;
export function vanillaAttentionSync(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions & { returnLse: true }): AttentionWithLse;
export function vanillaAttentionSync(q: Tensor, k: Tensor, v: Tensor, opts?: AttentionOptions & { returnLse?: false }): Tensor;
export function vanillaAttentionSync(q: Tensor, k: Tensor, v: Tensor, opts?: AttentionOptions): Tensor | AttentionWithLse;
export function vanillaAttentionSync(q: AnyTensor, k: AnyTensor, v: AnyTensor, opts?: AttentionOptions<AnyTensor>): AnyTensor | AttentionWithLse<AnyTensor>;
export function vanillaAttentionSync(q: AnyTensor, k: AnyTensor, v: AnyTensor, opts?: AttentionOptions<AnyTensor>): AnyTensor | AttentionWithLse<AnyTensor> {
  return runSync('vanilla', q, k, v, opts);
}
