export { Tensor, type DType, type TensorData, type TensorInput } from './tensor.js';
export { FmhaError, type FmhaErrorCode } from './errors.js';
export {
  attention, attentionSync, vanillaAttention, vanillaAttentionSync,
  type AttentionOptions, type AttentionWithLse, type AnyTensor,
} from './attention.js';
export { varlenAttention, varlenAttentionSync, type VarlenAttentionOptions } from './varlen.js';
export {
  decodeAttention, decodeAttentionSync, decode, decodeSync,
  type DecodeOptions, type DecodeAttentionOptions, type CacheDecodeOptions, type DecodeStrategy,
} from './decode.js';
export { KVCache, type KVCacheOptions } from './kv_cache.js';
export { packSequences, unpackSequences, type PackedSequences, type PackingOptions } from './packing.js';
export { DeviceTensor, toDevice, cudaMemoryStats, type ToDeviceOptions, type CudaMemoryStats } from './device.js';
export {
  backends, measureCpuPeak, measureMemoryBandwidth, setNumThreads,
  type BackendsInfo, type CpuPeak, type CudaDeviceInfo, type MemoryBandwidth,
} from './backends.js';
