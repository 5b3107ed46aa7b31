export { Tensor, type DType, type TensorData, type TensorInput } from './tensor.js';
export { FmhaError, type FmhaErrorCode } from './errors.js';
export {
  attention, attentionSync, vanillaAttention, vanillaAttentionSync,
  type AttentionOptions, type AttentionWithLse,
} from './attention.js';
export { backends, setNumThreads, type BackendsInfo, type CudaDeviceInfo } from './backends.js';
