// Loads the compiled addon and declares its shape once (the onnxruntime-node
// `Binding` pattern); nothing outside lib/ touches the addon directly.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FmhaError } from './errors.js';
import type { KVCacheOptions } from './kv_cache.js';

export type DType = 'float32' | 'float16' | 'bfloat16';
export type TensorData = Float32Array | Uint16Array;

/** What the addon reads from a tensor argument (a `Tensor` satisfies it). */
export interface NativeTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;
  readonly strides?: readonly number[];
}

/** The addon's handle on device memory (an External); opaque to lib/. */
export type NativeDeviceHandle = { readonly __fmhaDeviceHandle: unique symbol };

/** What the addon reads from a device tensor argument (a `DeviceTensor` satisfies it). */
export interface NativeDeviceTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly strides?: readonly number[];
  readonly handle: NativeDeviceHandle;
}

/** A host or device tensor argument. */
export type NativeAnyTensor = NativeTensor | NativeDeviceTensor;

/** Options as the addon receives them: lib/ has normalized, the addon validates. */
export interface NativeAttentionOptions {
  causal?: boolean;
  scale?: number;
  window?: readonly number[];
  softcap?: number;
  alibiSlopes?: Float32Array;
  seqlensK?: Int32Array;
  bias?: NativeAnyTensor;
  returnLse?: boolean;
  out?: NativeAnyTensor;
  backend?: string;
  /** Int32Array(1) set to 1 by lib/ when the caller's AbortSignal fires. */
  abortFlag?: Int32Array;
  /** Varlen only (kind 'varlen'). */
  cuSeqlensQ?: Int32Array;
  cuSeqlensK?: Int32Array;
  maxSeqlenQ?: number;
  maxSeqlenK?: number;
}

export interface NativeAttentionResult {
  /** Device handles when `device` is set (a call on DeviceTensors), else host data. */
  out: TensorData | NativeDeviceHandle;
  outShape: number[];
  lse?: Float32Array | NativeDeviceHandle;
  lseShape?: number[];
  device?: number;
}

export interface CudaDeviceInfo {
  /** CUDA device ordinal. */
  index: number;
  name: string;
  /** e.g. '9.0' for an H100. */
  computeCapability: string;
  /** Bytes of device memory. */
  totalMemory: number;
  multiprocessors: number;
}

export interface BackendsInfo {
  cpu: {
    /** The SIMD path chosen at run time: 'avx512' | 'avx2' | 'neon' | 'scalar'. */
    isa: string;
    /** Threads used by CPU kernels (setNumThreads / FMHA_NUM_THREADS). */
    threads: number;
    /** Whether AMX-BF16 tiles are usable (CPU has them and the OS granted them). */
    amx: boolean;
  };
  cuda: {
    available: boolean;
    /** Why CUDA is unavailable: 'built without CUDA', 'no CUDA device', a driver error, ... */
    reason?: string;
    devices: CudaDeviceInfo[];
  };
}

/** 'varlen' is the fused kernel over packed [T, H, D] sequences. */
export type AttentionKind = 'fused' | 'vanilla' | 'varlen';

/** Options of packSequences / unpackSequences as the addon receives them. */
export interface NativePackingOptions {
  out?: NativeAnyTensor;
}

export interface NativePackResult {
  packed: TensorData | NativeDeviceHandle;  // a handle when `device` is set; opts.out's when given
  packedShape: number[];
  cuSeqlens: Int32Array;
  maxSeqlen: number;
  device?: number;
}

export interface NativeUnpackResult {
  padded: TensorData | NativeDeviceHandle;  // a handle when `device` is set; opts.out's when given
  paddedShape: number[];
  device?: number;
}

/** The machine's measured float32 multiply-add rate on fmha's SIMD path. */
export interface CpuPeak {
  /** Aggregate GFLOP/s (2 FLOPs per multiply-add) over `threads` threads. */
  gflops: number;
  threads: number;
  /** The SIMD path measured: 'avx512' | 'avx2' | 'scalar' | 'neon'. */
  isa: string;
}

/** The machine's measured memory read bandwidth on fmha's threads. */
export interface MemoryBandwidth {
  /** Best of three passes, in GB/s (1e9 bytes per second). */
  gbps: number;
  /** Bytes of the buffer read per pass. */
  bytes: number;
  threads: number;
}

/** Options of a decode call as the addon receives them (DESIGN §3). */
export interface NativeDecodeOptions extends Omit<NativeAttentionOptions, 'seqlensK' | 'bias' | 'cuSeqlensQ' | 'cuSeqlensK' | 'maxSeqlenQ' | 'maxSeqlenK'> {
  strategy?: string;
  blockTable?: Int32Array;
  kNew?: NativeAnyTensor;
  vNew?: NativeAnyTensor;
  seqIds?: Int32Array | readonly number[];
}

/** The native KV cache behind lib's KVCache. */
export interface NativeKvCache {
  append(k: NativeTensor, v: NativeTensor, seqIds?: Int32Array | readonly number[]): void;
  lengths(): Int32Array;
  reset(seqId: number): void;
  freePages(): number;
  dispose(): void;
  decodeSync(q: NativeTensor, opts: NativeDecodeOptions): NativeAttentionResult;
  decodeAsync(q: NativeTensor, opts: NativeDecodeOptions): Promise<NativeAttentionResult>;
}

/** The native KV cache's constructor options: KVCache's, validated by the addon. */
export type NativeKvCacheConfig = KVCacheOptions;

/** A decode partition, for the partition's own tests: pieces [unit, firstTile, endTile], task boundaries. */
export interface NativeDecodePlan {
  pieces: [number, number, number][];
  tasks: number[];
}

export interface Binding {
  init(errorClass: typeof FmhaError): void;
  attentionSync(kind: AttentionKind, q: NativeAnyTensor, k: NativeAnyTensor, v: NativeAnyTensor,
                opts: NativeAttentionOptions): NativeAttentionResult;
  attentionAsync(kind: AttentionKind, q: NativeAnyTensor, k: NativeAnyTensor, v: NativeAnyTensor,
                 opts: NativeAttentionOptions): Promise<NativeAttentionResult>;
  /** [sync] Removes padding: padded [B, S, H, D] → packed [T, H, D] (into opts.out when given). */
  packSequences(padded: NativeAnyTensor, lengths: unknown, opts: NativePackingOptions | undefined): NativePackResult;
  /** [sync] Rebuilds padding: packed [T, H, D] → [B, seqLen, H, D], pads zero (into opts.out when given). */
  unpackSequences(packed: NativeAnyTensor, cuSeqlens: unknown, seqLen: unknown, opts: NativePackingOptions | undefined): NativeUnpackResult;
  /** Throws FmhaError when the tensor is malformed (one validator, shared with attention). */
  validateTensor(t: NativeAnyTensor, name: string): void;
  /** Contiguous float32 copy of any (possibly strided) tensor. */
  toFloat32(t: NativeTensor): Float32Array;
  /** float32 → dtype bits, rounding to nearest even. */
  fromFloat32(data: Float32Array, dtype: DType): TensorData;
  decodeAttentionSync(q: NativeAnyTensor, kCache: NativeAnyTensor, vCache: NativeAnyTensor, cacheSeqlens: unknown,
                      opts: NativeDecodeOptions): NativeAttentionResult;
  decodeAttentionAsync(q: NativeAnyTensor, kCache: NativeAnyTensor, vCache: NativeAnyTensor, cacheSeqlens: unknown,
                       opts: NativeDecodeOptions): Promise<NativeAttentionResult>;
  KvCache: new (config: NativeKvCacheConfig) => NativeKvCache;
  /** The decode partition alone (core/decode_partition): tile counts per unit → pieces and tasks. */
  planDecode(tiles: readonly number[], strategy: 'lean' | 'split' | 'single', workers: number): NativeDecodePlan;
  backends(): BackendsInfo;
  setNumThreads(n: number): void;
  measureCpuPeak(seconds?: number): CpuPeak;
  measureMemoryBandwidth(mib?: number): MemoryBandwidth;
  /** [async] A contiguous copy of t on CUDA device `device`. */
  toDeviceAsync(t: NativeTensor, device: unknown): Promise<NativeDeviceHandle>;
  /** [async] The elements of a device tensor, contiguous, once the device's earlier work has run. */
  toHostAsync(t: NativeDeviceTensor): Promise<TensorData>;
  /** [sync] Drops the handle's reference to its device memory; idempotent. */
  deviceDispose(handle: NativeDeviceHandle): void;
  /** [sync] A handle on the same device memory, `offset` elements further. */
  deviceView(t: NativeDeviceTensor, offset: unknown): NativeDeviceHandle;
  cudaMemoryStats(device: number): { inUseBytes: number; cachedBytes: number; mallocCalls: number; mallocRetries: number };
  /** [sync] Milliseconds per call: `iters` calls on DeviceTensors between CUDA events, after one warm-up call. */
  cudaTimeAttention(kind: AttentionKind, q: NativeDeviceTensor, k: NativeDeviceTensor, v: NativeDeviceTensor,
                    opts: NativeAttentionOptions, iters: number): number;
}

function addonPath(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const candidates = [
    process.env.FMHA_ADDON_PATH,
    join(root, 'build', 'Release', 'fmha.node'),
    join(root, 'build', 'Debug', 'fmha.node'),
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  throw new Error(
    'fmha: the native addon is not built (looked for build/Release/fmha.node). ' +
      'Run `npm rebuild fmha` (needs cmake or python3+make+g++); see README "Building".',
  );
}

const require = createRequire(import.meta.url);
export const native: Binding = require(addonPath()) as Binding;
native.init(FmhaError);
