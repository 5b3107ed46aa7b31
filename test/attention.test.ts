// Fused (FlashAttention-style) attention, float32: sizes, Dv ≠ D, strided views,
// empty tensors, NaN-poisoned `out`, determinism. Options: options.test.ts;
// 16-bit: dtypes.test.ts.
import { coreSuites } from './core.js';

coreSuites('fused', 'float32');
