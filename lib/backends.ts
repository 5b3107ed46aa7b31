import { native, type BackendsInfo, type CpuPeak, type MemoryBandwidth } from './native.js';

export type { BackendsInfo, CpuPeak, CudaDeviceInfo, MemoryBandwidth } from './native.js';

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

/**
 * Measures this machine's memory read bandwidth: a `mib` MiB buffer split
 * across the current threads, each summing its slice with vector loads (what
 * memory-bound kernels such as decode can reach). Allocates the buffer for the
 * call and blocks the calling thread (well under a second per GiB).
 * @param mib buffer size in MiB, an integer in [16, 16384], default 512
 * @throws FmhaError ERR_FMHA_ARGUMENT for a bad size, ERR_FMHA_OOM when it cannot be allocated
 */
export function measureMemoryBandwidth(mib?: number): MemoryBandwidth {
  return native.measureMemoryBandwidth(mib);
}
