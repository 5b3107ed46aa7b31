// Tensors in GPU memory (DESIGN §2): toDevice() copies a host Tensor to a CUDA
// device; every attention function and packSequences/unpackSequences accept
// DeviceTensors and return their outputs as DeviceTensors on the same device.
import { native, type DType, type NativeDeviceHandle, type TensorData } from './native.js';
import { Tensor } from './tensor.js';

/** Options of {@link toDevice}. */
export interface ToDeviceOptions {
  /** CUDA device index (see `backends().cuda.devices`). Default 0. */
  device?: number;
}

/** Device memory counters of fmha's caching allocator (one per device). */
export interface CudaMemoryStats {
  /** Bytes in blocks held by DeviceTensors and calls in flight. */
  inUseBytes: number;
  /** Bytes in freed blocks kept for reuse (returned to the driver only when an allocation fails). */
  cachedBytes: number;
  /** cudaMalloc calls so far; constant once a workload's shapes repeat. */
  mallocCalls: number;
  /** Times the cache was emptied to retry a failed cudaMalloc. */
  mallocRetries: number;
}

/**
 * A tensor in GPU memory: `dtype`, `shape` (and `strides` for a view) as for a
 * {@link Tensor}, but no `data` on the host. Make one with {@link toDevice} or
 * get one as the output of a call on DeviceTensors.
 *
 * - `await t.toHost()` copies it back (a contiguous host Tensor).
 * - `t.dispose()` returns its memory to fmha's cache at once (idempotent);
 *   `using t = await toDevice(...)` does so at the end of the scope. A
 *   forgotten DeviceTensor is freed when it is garbage-collected (its size is
 *   reported to V8 as external memory, so device-heavy loops trigger GC).
 * - A call in flight keeps the memory of the tensors it reads and writes
 *   alive, even if they are disposed before it settles.
 * - Using a disposed DeviceTensor → `FmhaError` `ERR_FMHA_ARGUMENT`.
 */
export class DeviceTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly strides?: readonly number[];
  /** The CUDA device index. */
  readonly device: number;
  /** @internal The native handle (read by the addon). */
  declare readonly handle: NativeDeviceHandle;
  #disposed = false;

  /** @internal Use {@link toDevice}; DeviceTensors are made by fmha only. */
  constructor(handle: NativeDeviceHandle, dtype: DType, shape: readonly number[], device: number, strides?: readonly number[]) {
    Object.defineProperty(this, 'handle', { value: handle, enumerable: false, writable: false, configurable: false });
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    if (strides !== undefined) this.strides = Object.freeze([...strides]);
    this.device = device;
  }

  /** Number of elements, the product of the shape. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Whether {@link dispose} was called on this object (views of it are separate objects). */
  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Copies the tensor to host memory once the work enqueued before this call on
   * the device has run; resolves to a contiguous {@link Tensor}. Rejects with
   * `ERR_FMHA_CUDA` if that work failed.
   */
  async toHost(): Promise<Tensor> {
    const data: TensorData = await native.toHostAsync(this);
    return new Tensor(this.dtype, data, this.shape);
  }

  /**
   * A view of the same device memory (no copy), for example q, k and v sliced
   * out of a fused QKV projection `[B, S, 3, H, D]`: `qkv.view([B, S, H, D],
   * [S·3·H·D, 3·H·D, D, 1], which·H·D)`. `offset` counts elements from this
   * tensor's first element; every element the view reaches must lie in the
   * memory (else `ERR_FMHA_SHAPE`). The memory lives until this tensor and
   * every view of it are disposed or collected.
   */
  view(shape: readonly number[], strides?: readonly number[], offset = 0): DeviceTensor {
    const t = new DeviceTensor(native.deviceView(this, offset), this.dtype, shape, this.device, strides);
    try {
      native.validateTensor(t, 'view');
    } catch (err) {
      t.dispose();
      throw err;
    }
    return t;
  }

  /** Returns the memory to fmha's cache now (after calls in flight that use it). Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    native.deviceDispose(this.handle);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Copies a host tensor to GPU memory (a strided view becomes contiguous).
 * The promise settles once the bytes are on the device.
 *
 * Rejects with `FmhaError` `ERR_FMHA_BACKEND` when CUDA is not available (the
 * message carries `backends().cuda.reason`), `ERR_FMHA_ARGUMENT` for a device
 * index that does not exist, `ERR_FMHA_OOM` when the device is full.
 */
export async function toDevice(tensor: Tensor, opts: ToDeviceOptions = {}): Promise<DeviceTensor> {
  const device = opts?.device ?? 0;
  const handle = await native.toDeviceAsync(tensor, device);
  return new DeviceTensor(handle, tensor.dtype, tensor.shape, device);
}

/** Whether x is a {@link DeviceTensor}. */
export function isDeviceTensor(x: unknown): x is DeviceTensor {
  return x instanceof DeviceTensor;
}

/** Device memory counters of fmha's caching allocator for `device` (default 0); all 0 without CUDA. */
export function cudaMemoryStats(device = 0): CudaMemoryStats {
  return native.cudaMemoryStats(device);
}

/** @internal Wraps an output handle the addon returned. */
export function wrapDeviceOutput(handle: NativeDeviceHandle, dtype: DType, shape: readonly number[], device: number): DeviceTensor {
  return new DeviceTensor(handle, dtype, shape, device);
}
