import { native, type BackendsInfo, type CpuPeak } from './native.js';

export type { BackendsInfo, CpuPeak, CudaDeviceInfo } from './native.js';

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

/**
 * Measures this machine's float32 multiply-add rate (independent FMA chains at
 * the SIMD width fmha uses, on the current thread count): the ceiling to read
 * any attention GFLOP/s against. Blocks the calling thread for about `seconds`.
 * @param seconds run time in [0.01, 10], default 0.25
 */
export function measureCpuPeak(seconds?: number): CpuPeak {
  return native.measureCpuPeak(seconds);
}
