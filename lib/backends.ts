import { native, type BackendsInfo } from './native.js';

export type { BackendsInfo, CudaDeviceInfo } from './native.js';

/** What this build and machine offer: the CPU's SIMD path and threads, CUDA devices or why there are none. */
export function backends(): BackendsInfo {
  return native.backends();
}

/**
 * Threads for all CPU work (default: the `FMHA_NUM_THREADS` environment variable
 * read at load, else the number of cores). Applies to calls started after it.
 * @param n integer in [1, 1024]
 * @throws FmhaError ERR_FMHA_ARGUMENT otherwise
 */
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}
