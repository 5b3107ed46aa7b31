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

function wrap(data: TensorData | NativeDeviceHandle, dtype: Tensor['dtype'], shape: number[], device?: number): Tensor | DeviceTensor {
  return device === undefined ? new Tensor(dtype, data as TensorData, shape) : wrapDeviceOutput(data as NativeDeviceHandle, dtype, shape, device);
}

/**
 * Removes padding (ByteTransformer): sequence b's first lengths[b] rows of
 * `padded` become consecutive rows of `packed`. Runs synchronously (a memory copy); on a
 * DeviceTensor (contiguous) it enqueues the copy on the device's stream and returns at once.
 *
 * @param padded  `[B, S, H, D]`, any dtype, strided views accepted
 * @param lengths B integers in [0, S] (wrong count → ERR_FMHA_SHAPE; out of range or not an integer → ERR_FMHA_ARGUMENT)
 */
export function packSequences(padded: DeviceTensor, lengths: ArrayLike<number>): PackedSequences<DeviceTensor>;
export function packSequences(padded: Tensor, lengths: ArrayLike<number>): PackedSequences;
export function packSequences(padded: Tensor | DeviceTensor, lengths: ArrayLike<number>): PackedSequences<Tensor | DeviceTensor> {
  const r = native.packSequences(padded, lengths);
  return { packed: wrap(r.packed, padded.dtype, r.packedShape, r.device), cuSeqlens: r.cuSeqlens, maxSeqlen: r.maxSeqlen };
}

/**
 * Rebuilds padding: `[B, seqLen, H, D]` with sequence b's rows from `packed`
 * and zeros after them. Runs synchronously (a memory copy); on a DeviceTensor
 * (contiguous) it enqueues the copy on the device's stream and returns at once.
 *
 * @param packed    `[T, H, D]`, any dtype (rows past cuSeqlens[B] are not read)
 * @param cuSeqlens Int32Array(B + 1): starts at 0, never decreases, ends ≤ T
 * @param seqLen    padded length, ≥ the longest sequence; default the longest
 */
export function unpackSequences(packed: DeviceTensor, cuSeqlens: Int32Array, seqLen?: number): DeviceTensor;
export function unpackSequences(packed: Tensor, cuSeqlens: Int32Array, seqLen?: number): Tensor;
export function unpackSequences(packed: Tensor | DeviceTensor, cuSeqlens: Int32Array, seqLen?: number): Tensor | DeviceTensor {
  const r = native.unpackSequences(packed, cuSeqlens, seqLen);
  return wrap(r.padded, packed.dtype, r.paddedShape, r.device);
}
