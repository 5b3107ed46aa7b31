// Random inputs and FLOP counts shared by the benchmarks.
import { Tensor, type DType } from '../lib/index.js';

export interface Shape { B: number; H: number; S: number; D: number; causal: boolean; dtype: DType }

export function randomTensor(shape: number[], dtype: DType, seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;  // xorshift32
    a[i] = (s / 2 ** 32) * 2 - 1;
  }
  return Tensor.fromFloat32(a, shape, dtype);
}

export function qkv(s: Shape): [Tensor, Tensor, Tensor] {
  const dims = [s.B, s.S, s.H, s.D];
  return [randomTensor(dims, s.dtype, 1), randomTensor(dims, s.dtype, 2), randomTensor(dims, s.dtype, 3)];
}

/** 4·B·H·Sq·Sk·D (two GEMMs of 2 FLOPs per multiply-add), halved for causal: the visible half. */
export function attentionFlops(s: Shape): number {
  return (4 * s.B * s.H * s.S * s.S * s.D) / (s.causal ? 2 : 1);
}

export function label(s: Shape): string {
  return `B=${s.B} H=${s.H} S=${s.S} D=${s.D} ${s.dtype}${s.causal ? ' causal' : ''}`;
}
