// Attention over padding-free variable-length batches (ByteTransformer;
// FlashAttention's varlen API): packed [T, H, D] tokens with cuSeqlens prefix
// sums. lib/packing.ts removes and rebuilds the padding. Every check is the binding's.
import { runAsync, runSync, type AnyTensor, type AttentionOptions, type AttentionWithLse } from './attention.js';
import { Tensor } from './tensor.js';
import type { DeviceTensor } from './device.js';

/**
 * Options of {@link varlenAttention}: every option of attention except the two
 * whose layout is padded (`seqlensK`, `bias`: passing them is `ERR_FMHA_ARGUMENT`),
 * plus the packed layout. In the masks and ALiBi, i, j, Sq and Sk are those of
 * each sequence: query i of sequence b sees key j iff j ≤ i + Sk_b − Sq_b under
 * `causal` (bottom-right per sequence, as chunked prefill needs).
 */
export interface VarlenAttentionOptions<T extends AnyTensor = Tensor> extends Omit<AttentionOptions<T>, 'seqlensK' | 'bias' | 'out' | 'returnLse'> {
  /** Int32Array(B + 1): sequence b is query rows cuSeqlensQ[b] .. cuSeqlensQ[b + 1] − 1 of q. Starts at 0, never decreases, ends ≤ Tq. */
  cuSeqlensQ: Int32Array;
  /** Int32Array(B + 1): sequence b's keys are rows cuSeqlensK[b] .. cuSeqlensK[b + 1] − 1 of k and v. Ends ≤ Tk. */
  cuSeqlensK: Int32Array;
  /** The longest query sequence, as FlashAttention's max_seqlen_q: checked (below the real maximum → ERR_FMHA_ARGUMENT), else unused. */
  maxSeqlenQ?: number;
  /** The longest key sequence: checked like maxSeqlenQ. */
  maxSeqlenK?: number;
  /** Also return lse, float32 `[Hq, Tq]` (FlashAttention's varlen layout); rows past cuSeqlensQ[B] are −Infinity. */
  returnLse?: boolean;
  /** Preallocated contiguous output `[Tq, Hq, Dv]` in q's dtype; rows at or past cuSeqlensQ[B] are left untouched. */
  out?: T;
}

/**
 * Fused attention over a packed batch: no FLOP is spent on padding, and work is
 * scheduled by each sequence's cost, not batch × longest length.
 *
 * @param q `[Tq, Hq, D]` packed queries (Tq may exceed cuSeqlensQ[B]: those rows are not read)
 * @param k `[Tk, Hkv, D]` packed keys, Hq % Hkv === 0
 * @param v `[Tk, Hkv, Dv]`
 * @returns `[Tq, Hq, Dv]` in q's dtype (rows past cuSeqlensQ[B] are 0); with `returnLse: true`, `{ out, lse }`.
 *   Rejects (never throws) with `FmhaError` on bad input, `AbortError` when aborted.
 */
export function varlenAttention(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, opts: VarlenAttentionOptions<DeviceTensor> & { returnLse: true }): Promise<AttentionWithLse<DeviceTensor>>;
export function varlenAttention(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, opts: VarlenAttentionOptions<DeviceTensor> & { returnLse?: false }): Promise<DeviceTensor>;
export function varlenAttention(q: Tensor, k: Tensor, v: Tensor, opts: VarlenAttentionOptions & { returnLse: true }): Promise<AttentionWithLse>;
export function varlenAttention(q: Tensor, k: Tensor, v: Tensor, opts: VarlenAttentionOptions & { returnLse?: false }): Promise<Tensor>;
export function varlenAttention(q: Tensor, k: Tensor, v: Tensor, opts: VarlenAttentionOptions): Promise<Tensor | AttentionWithLse>;
export function varlenAttention(q: AnyTensor, k: AnyTensor, v: AnyTensor, opts: VarlenAttentionOptions<AnyTensor>): Promise<AnyTensor | AttentionWithLse<AnyTensor>>;
export function varlenAttention(q: AnyTensor, k: AnyTensor, v: AnyTensor, opts: VarlenAttentionOptions<AnyTensor>): Promise<AnyTensor | AttentionWithLse<AnyTensor>> {
  return runAsync('varlen', q, k, v, opts);
}

/**
 * {@link varlenAttention} on the calling thread (which joins fmha's pool); throws instead of rejecting.
 * On DeviceTensors it only enqueues the work and returns the output DeviceTensor at once.
 */
export function varlenAttentionSync(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, opts: VarlenAttentionOptions<DeviceTensor> & { returnLse: true }): AttentionWithLse<DeviceTensor>;
export function varlenAttentionSync(q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, opts: VarlenAttentionOptions<DeviceTensor> & { returnLse?: false }): DeviceTensor;
export function varlenAttentionSync(q: Tensor, k: Tensor, v: Tensor, opts: VarlenAttentionOptions & { returnLse: true }): AttentionWithLse;
export function varlenAttentionSync(q: Tensor, k: Tensor, v: Tensor, opts: VarlenAttentionOptions & { returnLse?: false }): Tensor;
export function varlenAttentionSync(q: Tensor, k: Tensor, v: Tensor, opts: VarlenAttentionOptions): Tensor | AttentionWithLse;
export function varlenAttentionSync(q: AnyTensor, k: AnyTensor, v: AnyTensor, opts: VarlenAttentionOptions<AnyTensor>): AnyTensor | AttentionWithLse<AnyTensor>;
export function varlenAttentionSync(q: AnyTensor, k: AnyTensor, v: AnyTensor, opts: VarlenAttentionOptions<AnyTensor>): AnyTensor | AttentionWithLse<AnyTensor> {
  return runSync('varlen', q, k, v, opts);
}
