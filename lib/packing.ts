// Padding removal and rebuild (ByteTransformer): padded [B, S, H, D] batches
// to packed [T, H, D] tokens with cuSeqlens and back, as native memory copies.
// Every check is the binding's.
import { native, type NativeDeviceHandle, type TensorData } from './native.js';
import { Tensor } from './tensor.js';
import { wrapDeviceOutput, type DeviceTensor } from './device.js';

/**
 * A packed batch: `packed [T, H, D]` (a DeviceTensor when the padded batch was one),
 * `cuSeqlens` Int32Array(B + 1) of prefix sums from 0 (always on the host), the longest length.
 */
export interface PackedSequences<T extends Tensor | DeviceTensor = Tensor> {
  packed: T;
  cuSeqlens: Int32Array;
  maxSeqlen: number;
}

/**
 * Options of {@link packSequences} and {@link unpackSequences}: fmha's
 * extension of DESIGN §3's signatures (which have no options).
 */
export interface PackingOptions<T extends Tensor | DeviceTensor = Tensor> {
  /**
   * Preallocated output, checked as attention's `out`: the result's shape (else
   * `ERR_FMHA_SHAPE`), the input's dtype (else `ERR_FMHA_DTYPE`), contiguous, on
   * the input's side and device, not overlapping the input (else
   * `ERR_FMHA_ARGUMENT`). The call returns this object; on any error nothing in
   * it is written. Reusing one buffer across calls saves the allocation and the
   * first-touch page faults of a new one, which cost more than the copy itself.
   */
  out?: T;
}

function wrap(data: TensorData | NativeDeviceHandle, dtype: Tensor['dtype'], shape: number[], device?: number): Tensor | DeviceTensor {
  return device === undefined ? new Tensor(dtype, data as TensorData, shape) : wrapDeviceOutput(data as NativeDeviceHandle, dtype, shape, device);
}

/**
 * Removes padding (ByteTransformer): sequence b's first lengths[b] rows of
 * `padded` become consecutive rows of `packed`. Runs synchronously (a memory copy); on a
 * DeviceTensor (contiguous) it enqueues the copy on the device's stream and returns at once.
 *
 * @param padded  `[B, S, H, D]`, any dtype, strided views accepted on the host
 * @param lengths B integers in [0, S], tokens per sequence (wrong count → ERR_FMHA_SHAPE; out of range or not an integer → ERR_FMHA_ARGUMENT)
 * @param opts    `out`: the packed tensor to write, `[T, H, D]` with T = Σ lengths, padded's dtype, contiguous
 * @returns `packed [T, H, D]` in padded's dtype (`opts.out` itself when given), `cuSeqlens`, `maxSeqlen`
 */
export function packSequences(padded: DeviceTensor, lengths: ArrayLike<number>, opts?: PackingOptions<DeviceTensor> | null): PackedSequences<DeviceTensor>;
export function packSequences(padded: Tensor, lengths: ArrayLike<number>, opts?: PackingOptions | null): PackedSequences;
export function packSequences(padded: Tensor | DeviceTensor, lengths: ArrayLike<number>, opts?: PackingOptions<Tensor | DeviceTensor> | null): PackedSequences<Tensor | DeviceTensor> {
  const r = native.packSequences(padded, lengths, opts ?? undefined);
  return { packed: opts?.out ?? wrap(r.packed, padded.dtype, r.packedShape, r.device), cuSeqlens: r.cuSeqlens, maxSeqlen: r.maxSeqlen };
}

/**
 * Rebuilds padding: `[B, seqLen, H, D]` with sequence b's rows from `packed`
 * and zeros after them (in `opts.out` too: every element is written). Runs
 * synchronously (a memory copy); on a DeviceTensor (contiguous) it enqueues the
 * copy on the device's stream and returns at once.
 *
 * @param packed    `[T, H, D]`, any dtype (rows past cuSeqlens[B] are not read)
 * @param cuSeqlens Int32Array(B + 1), token offsets: starts at 0, never decreases, ends ≤ T
 * @param seqLen    padded length in tokens, ≥ the longest sequence; default the longest
 * @param opts      `out`: the padded tensor to write, `[B, seqLen, H, D]`, packed's dtype, contiguous
 * @returns `[B, seqLen, H, D]` in packed's dtype (`opts.out` itself when given)
 */
export function unpackSequences(packed: DeviceTensor, cuSeqlens: Int32Array, seqLen?: number, opts?: PackingOptions<DeviceTensor> | null): DeviceTensor;
export function unpackSequences(packed: Tensor, cuSeqlens: Int32Array, seqLen?: number, opts?: PackingOptions | null): Tensor;
export function unpackSequences(packed: Tensor | DeviceTensor, cuSeqlens: Int32Array, seqLen?: number, opts?: PackingOptions<Tensor | DeviceTensor> | null): Tensor | DeviceTensor {
  const r = native.unpackSequences(packed, cuSeqlens, seqLen, opts ?? undefined);
  return opts?.out ?? wrap(r.padded, packed.dtype, r.paddedShape, r.device);
}
