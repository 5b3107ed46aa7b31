// Token generation: a few new query tokens per sequence over a KV cache
// (DESIGN §3, §5), on raw cache tensors (FlashAttention's
// flash_attn_with_kvcache) or on a KVCache. Work is cut by LeanAttention's
// stream-K partition by default; every check is the binding's.
import { callAsync, callSync, type AnyTensor, type AttentionOptions, type AttentionWithLse } from './attention.js';
import type { DeviceTensor } from './device.js';
import { KVCache } from './kv_cache.js';
import { native } from './native.js';
import type { Tensor } from './tensor.js';

/** How decode work is cut among threads (DESIGN §5). */
export type DecodeStrategy = 'auto' | 'lean' | 'split' | 'single';

/**
 * Options of {@link decode} and {@link decodeAttention}: every attention option
 * except `seqlensK` and `bias` (ERR_FMHA_ARGUMENT). Sk in the masks and ALiBi is
 * each sequence's cache length, so `causal` with several new tokens aligns them
 * with the cache's last keys (bottom-right).
 */
export interface DecodeOptions<T extends AnyTensor = Tensor> extends Omit<AttentionOptions<T>, 'seqlensK' | 'bias' | 'returnLse'> {
  /** Also return lse, float32 `[B, Hq]` for a rank-3 q, `[B, Hq, Sq]` for rank 4. */
  returnLse?: boolean;
  /**
   * 'lean' (stream-K: the total key tiles cut into equal contiguous ranges, one per
   * thread, across sequence and head boundaries), 'split' (fixed splits per
   * sequence, FlashDecoding), 'single' (one thread per (sequence, kv head)), or
   * 'auto' (default). Results are deterministic for a given strategy and thread count.
   */
  strategy?: DecodeStrategy;
  /** New keys `[B, Sq, Hkv, D]` written into the cache before attending (fused append); with vNew. */
  kNew?: T;
  /** New values `[B, Sq, Hkv, Dv]`; with kNew. */
  vNew?: T;
}

/** Options of {@link decodeAttention}: plus the paged layout. */
export interface DecodeAttentionOptions<T extends AnyTensor = Tensor> extends DecodeOptions<T> {
  /**
   * A paged cache's block table, Int32Array `[B, maxPages]` row-major: key j of
   * sequence b is row j % pageSize of page blockTable[b·maxPages + ⌊j / pageSize⌋]
   * of kCache `[numPages, pageSize, Hkv, D]`. Entries past a sequence's length are not read.
   */
  blockTable?: Int32Array;
  /** New keys, written at rows cacheSeqlens[b] − Sq .. cacheSeqlens[b] − 1 of sequence b. */
  kNew?: T;
}

/** Options of {@link decode} on a KVCache. */
export interface CacheDecodeOptions extends DecodeOptions {
  /** The sequences q's batch rows belong to (distinct ids; continuous batching). Default 0 .. batch − 1. */
  seqIds?: Int32Array | readonly number[];
  /** New keys appended to each listed sequence (its length grows by Sq) before attending. */
  kNew?: Tensor;
}

/**
 * Attention of a few new tokens per sequence over a KV cache held in tensors.
 *
 * @param q `[B, Hq, D]` (one new token per sequence) or `[B, Sq, Hq, D]` (a few: speculative decoding)
 * @param kCache `[B, capacity, Hkv, D]`, or with `opts.blockTable` paged `[numPages, pageSize, Hkv, D]`
 * @param vCache like kCache with Dv
 * @param cacheSeqlens Int32Array(B): sequence b's valid keys, new tokens included; keys past it are never read
 * @returns `[B, Hq, Dv]` or `[B, Sq, Hq, Dv]` in q's dtype; with `returnLse: true`, `{ out, lse }`.
 *   Rejects (never throws) with `FmhaError`, `AbortError` when aborted.
 *
 * On DeviceTensors (q, caches, kNew/vNew and out all on one device; cacheSeqlens and
 * blockTable stay host arrays) it runs the CUDA decode and returns DeviceTensors.
 * `backend: 'cuda'` on host tensors is refused (ERR_FMHA_BACKEND): a KV cache is not
 * copied to the GPU per step; `toDevice` it once.
 */
export function decodeAttention(q: DeviceTensor, kCache: DeviceTensor, vCache: DeviceTensor, cacheSeqlens: Int32Array, opts: DecodeAttentionOptions<DeviceTensor> & { returnLse: true }): Promise<AttentionWithLse<DeviceTensor>>;
export function decodeAttention(q: DeviceTensor, kCache: DeviceTensor, vCache: DeviceTensor, cacheSeqlens: Int32Array, opts?: DecodeAttentionOptions<DeviceTensor> & { returnLse?: false }): Promise<DeviceTensor>;
export function decodeAttention(q: Tensor, kCache: Tensor, vCache: Tensor, cacheSeqlens: Int32Array, opts: DecodeAttentionOptions & { returnLse: true }): Promise<AttentionWithLse>;
export function decodeAttention(q: Tensor, kCache: Tensor, vCache: Tensor, cacheSeqlens: Int32Array, opts?: DecodeAttentionOptions & { returnLse?: false }): Promise<Tensor>;
export function decodeAttention<T extends AnyTensor>(q: T, kCache: T, vCache: T, cacheSeqlens: Int32Array, opts?: DecodeAttentionOptions<T>): Promise<T | AttentionWithLse<T>>;
export function decodeAttention<T extends AnyTensor>(q: T, kCache: T, vCache: T, cacheSeqlens: Int32Array, opts?: DecodeAttentionOptions<T>): Promise<T | AttentionWithLse<T>> {
  return callAsync(q, opts, (o) => native.decodeAttentionAsync(q, kCache, vCache, cacheSeqlens, o));
}

/**
 * {@link decodeAttention} on the calling thread; throws instead of rejecting. On
 * DeviceTensors it only enqueues the work on the device's stream and returns at once.
 */
export function decodeAttentionSync(q: DeviceTensor, kCache: DeviceTensor, vCache: DeviceTensor, cacheSeqlens: Int32Array, opts: DecodeAttentionOptions<DeviceTensor> & { returnLse: true }): AttentionWithLse<DeviceTensor>;
export function decodeAttentionSync(q: DeviceTensor, kCache: DeviceTensor, vCache: DeviceTensor, cacheSeqlens: Int32Array, opts?: DecodeAttentionOptions<DeviceTensor> & { returnLse?: false }): DeviceTensor;
export function decodeAttentionSync(q: Tensor, kCache: Tensor, vCache: Tensor, cacheSeqlens: Int32Array, opts: DecodeAttentionOptions & { returnLse: true }): AttentionWithLse;
export function decodeAttentionSync(q: Tensor, kCache: Tensor, vCache: Tensor, cacheSeqlens: Int32Array, opts?: DecodeAttentionOptions & { returnLse?: false }): Tensor;
export function decodeAttentionSync<T extends AnyTensor>(q: T, kCache: T, vCache: T, cacheSeqlens: Int32Array, opts?: DecodeAttentionOptions<T>): T | AttentionWithLse<T>;
export function decodeAttentionSync<T extends AnyTensor>(q: T, kCache: T, vCache: T, cacheSeqlens: Int32Array, opts?: DecodeAttentionOptions<T>): T | AttentionWithLse<T> {
  return callSync(q, opts, (o) => native.decodeAttentionSync(q, kCache, vCache, cacheSeqlens, o));
}

/**
 * {@link decodeAttention} over a {@link KVCache}: the cache's layout and lengths,
 * for the sequences in `opts.seqIds` (continuous batching). With kNew/vNew the
 * new tokens are appended first. While it is in flight the cache refuses
 * append, reset and appending decodes (ERR_FMHA_ARGUMENT, 'cache busy').
 *
 * @param q `[B', Hq, D]` or `[B', Sq, Hq, D]`, B' = seqIds.length (default the cache's batch)
 */
export function decode(q: Tensor, cache: KVCache, opts: CacheDecodeOptions & { returnLse: true }): Promise<AttentionWithLse>;
export function decode(q: Tensor, cache: KVCache, opts?: CacheDecodeOptions & { returnLse?: false }): Promise<Tensor>;
export function decode(q: Tensor, cache: KVCache, opts?: CacheDecodeOptions): Promise<Tensor | AttentionWithLse>;
export function decode(q: Tensor, cache: KVCache, opts?: CacheDecodeOptions): Promise<Tensor | AttentionWithLse> {
  let p: Promise<Tensor | AttentionWithLse>;
  try {
    const nc = KVCache.native(cache);
    p = callAsync(q, opts, (o) => nc.decodeAsync(q, o));
  } catch (err) {
    return Promise.reject(err);
  }
  return KVCache.track(cache, p);
}

/** {@link decode} on the calling thread; throws instead of rejecting. */
export function decodeSync(q: Tensor, cache: KVCache, opts: CacheDecodeOptions & { returnLse: true }): AttentionWithLse;
export function decodeSync(q: Tensor, cache: KVCache, opts?: CacheDecodeOptions & { returnLse?: false }): Tensor;
export function decodeSync(q: Tensor, cache: KVCache, opts?: CacheDecodeOptions): Tensor | AttentionWithLse;
export function decodeSync(q: Tensor, cache: KVCache, opts?: CacheDecodeOptions): Tensor | AttentionWithLse {
  const nc = KVCache.native(cache);
  return callSync(q, opts, (o) => nc.decodeSync(q, o));
}
