// Padding removal and rebuild (ByteTransformer): padded [B, S, H, D] batches
// to packed [T, H, D] tokens with cuSeqlens and back, as native memory copies.
// Every check is the binding's.
import { native } from './native.js';
import { Tensor } from './tensor.js';

/** A packed batch: `packed [T, H, D]`, `cuSeqlens` Int32Array(B + 1) of prefix sums from 0, the longest length. */
export interface PackedSequences {
  packed: Tensor;
  cuSeqlens: Int32Array;
  maxSeqlen: number;
}

/**
 * Removes padding (ByteTransformer): sequence b's first lengths[b] rows of
 * `padded` become consecutive rows of `packed`. Runs synchronously (a memory copy).
 *
 * @param padded  `[B, S, H, D]`, any dtype, strided views accepted
 * @param lengths B integers in [0, S] (wrong count → ERR_FMHA_SHAPE; out of range or not an integer → ERR_FMHA_ARGUMENT)
 */
export function packSequences(padded: Tensor, lengths: ArrayLike<number>): PackedSequences {
  const r = native.packSequences(padded, lengths);
  return { packed: new Tensor(padded.dtype, r.packed, r.packedShape), cuSeqlens: r.cuSeqlens, maxSeqlen: r.maxSeqlen };
}

/**
 * Rebuilds padding: `[B, seqLen, H, D]` with sequence b's rows from `packed`
 * and zeros after them. Runs synchronously (a memory copy).
 *
 * @param packed    `[T, H, D]`, any dtype (rows past cuSeqlens[B] are not read)
 * @param cuSeqlens Int32Array(B + 1): starts at 0, never decreases, ends ≤ T
 * @param seqLen    padded length, ≥ the longest sequence; default the longest
 */
export function unpackSequences(packed: Tensor, cuSeqlens: Int32Array, seqLen?: number): Tensor {
  const r = native.unpackSequences(packed, cuSeqlens, seqLen);
  return new Tensor(packed.dtype, r.padded, r.paddedShape);
}
