import { native, type DType, type TensorData } from './native.js';

export type { DType, TensorData };

/** A typed array the Tensor constructor accepts: raw float32 values or raw 16-bit patterns. */
export type TensorInput = Float32Array | Uint16Array | { readonly buffer: ArrayBufferLike; readonly byteOffset: number; readonly length: number; readonly BYTES_PER_ELEMENT: 2 };

function isFloat16Array(x: unknown): boolean {
  return Object.prototype.toString.call(x) === '[object Float16Array]';
}

/**
 * A host tensor: a typed array seen through a shape (and optional strides).
 *
 * - `float32` data is a `Float32Array`; `float16` and `bfloat16` data are the raw
 *   bits in a `Uint16Array` (a `Float16Array` is accepted and viewed as its bits).
 * - Layout is row-major. `strides` (in elements, last one 1) make a view, for example
 *   q, k or v sliced out of a fused QKV projection `[B, S, 3, H, D]` without a copy.
 * - The constructor wraps `data` without copying; fmha reads it in place. Do not
 *   mutate it while an async call that reads it is in flight.
 */
export class Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;
  readonly strides?: readonly number[];

  /**
   * @param dtype   element type
   * @param data    backing typed array (not copied)
   * @param shape   dimensions; a contiguous tensor needs `data.length === product(shape)`
   * @param strides optional strides in elements; every reachable element must lie in `data`
   * @throws FmhaError ERR_FMHA_DTYPE / ERR_FMHA_SHAPE when data and shape disagree
   */
  constructor(dtype: DType, data: TensorInput, shape: readonly number[], strides?: readonly number[]) {
    this.dtype = dtype;
    this.data = (isFloat16Array(data)
      ? new Uint16Array(data.buffer, data.byteOffset, data.length)
      : data) as TensorData;
    this.shape = Object.freeze([...shape]);
    if (strides !== undefined) this.strides = Object.freeze([...strides]);
    native.validateTensor(this, 'tensor');
  }

  /** Converts float32 values to a tensor of `dtype` (round to nearest even); the data is copied. */
  static fromFloat32(data: Float32Array | readonly number[], shape: readonly number[], dtype: DType = 'float32'): Tensor {
    const f32 = data instanceof Float32Array ? data : Float32Array.from(data);
    const bits = dtype === 'float32' ? f32.slice() : native.fromFloat32(f32, dtype);
    return new Tensor(dtype, bits, shape);
  }

  /** A contiguous float32 copy of the elements in row-major order (strides followed). */
  toFloat32(): Float32Array {
    return native.toFloat32(this);
  }

  /** Number of elements, the product of the shape. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
}
