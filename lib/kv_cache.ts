// A KV cache for token generation (DESIGN §3): contiguous or paged (vLLM's
// PagedAttention: fixed-size pages, per-sequence block tables, a free-page
// pool), written in place by append() and by decode()'s fused kNew/vNew.
// The memory, lengths and page bookkeeping live in the addon, which also does
// every check; this class types them and tracks in-flight decodes for
// Symbol.asyncDispose.
import { FmhaError } from './errors.js';
import { native, type DType, type NativeKvCache } from './native.js';
import type { Tensor } from './tensor.js';

export interface KVCacheOptions {
  /** Sequences the cache holds (ids 0 .. batch − 1). */
  batch: number;
  /** Most tokens one sequence may hold. */
  capacity: number;
  /** K/V heads (Hkv); queries of decode() may have any multiple of them (GQA/MQA). */
  kvHeads: number;
  /** Elements per K head, 1..256. */
  headDim: number;
  /** Elements per V head, 1..256. Default headDim. */
  headDimV?: number;
  /** Element type of K and V (and of the tensors appended and decoded). Default 'float32'. */
  dtype?: DType;
  /** A CUDA device: not in this build yet (ERR_FMHA_BACKEND). */
  device?: number;
  /** Tokens per page: makes the cache paged. Omitted: contiguous `[batch, capacity, Hkv, D]`. */
  pageSize?: number;
  /** Pages in the pool (paged only). Default batch × ⌈capacity / pageSize⌉, enough for every sequence at capacity. */
  numPages?: number;
}

export class KVCache {
  readonly batch: number;
  readonly capacity: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly headDimV: number;
  readonly dtype: DType;
  /** Tokens per page; undefined for a contiguous cache. */
  readonly pageSize?: number;
  #native: NativeKvCache;
  readonly #inFlight = new Set<Promise<unknown>>();

  /**
   * Allocates the cache: `batch × capacity × Hkv × (D + Dv)` elements contiguous, or
   * `numPages × pageSize × Hkv × (D + Dv)` paged. Counted against FMHA_MAX_SCRATCH_BYTES
   * (default half of physical memory): above it → `ERR_FMHA_OOM`.
   * @throws FmhaError ERR_FMHA_ARGUMENT / ERR_FMHA_DTYPE / ERR_FMHA_OOM / ERR_FMHA_BACKEND
   */
  constructor(opts: KVCacheOptions) {
    this.#native = new native.KvCache(opts);
    this.batch = opts.batch;
    this.capacity = opts.capacity;
    this.kvHeads = opts.kvHeads;
    this.headDim = opts.headDim;
    this.headDimV = opts.headDimV ?? opts.headDim;
    this.dtype = opts.dtype ?? 'float32';
    if (opts.pageSize !== undefined) this.pageSize = opts.pageSize;
  }

  /**
   * Appends `n` tokens to each listed sequence, in place (synchronous).
   * @param k `[B', n, Hkv, D]` in the cache's dtype (B' = seqIds.length, or batch)
   * @param v `[B', n, Hkv, Dv]`
   * @param seqIds distinct sequence ids; default all of 0 .. batch − 1
   * @throws FmhaError ERR_FMHA_ARGUMENT when a sequence would pass capacity, no page is free,
   *   a decode on the cache is in flight ('cache busy'), or the cache was disposed; nothing is written then.
   */
  append(k: Tensor, v: Tensor, seqIds?: Int32Array | readonly number[]): void {
    this.#native.append(k, v, seqIds);
  }

  /** A copy of every sequence's length (tokens held). */
  get lengths(): Int32Array {
    return this.#native.lengths();
  }

  /** Pages left in the pool (0 for a contiguous cache). */
  get freePages(): number {
    return this.#native.freePages();
  }

  /** Empties sequence `seqId` and returns its pages to the pool. ERR_FMHA_ARGUMENT while a decode is in flight. */
  reset(seqId: number): void {
    this.#native.reset(seqId);
  }

  /** Frees the cache once in-flight decodes end (they keep it alive); later use → ERR_FMHA_ARGUMENT. Idempotent. */
  dispose(): void {
    this.#native.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Waits for in-flight decodes to settle, then disposes. */
  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.allSettled([...this.#inFlight]);
    this.dispose();
  }

  /** @internal The native cache, for lib/decode.ts. */
  static native(cache: KVCache): NativeKvCache {
    if (!(typeof cache === 'object' && cache !== null && #native in cache))
      throw new FmhaError('cache must be a KVCache, got ' + (cache === null ? 'null' : typeof cache), 'ERR_FMHA_DTYPE');
    return cache.#native;
  }

  /** @internal Tracks an in-flight decode until it settles. */
  static track<T>(cache: KVCache, p: Promise<T>): Promise<T> {
    cache.#inFlight.add(p);
    const done = () => { cache.#inFlight.delete(p); };
    p.then(done, done);
    return p;
  }
}
