// Causal self-attention with GQA, off the event loop, with the row log-sum-exp.
// Run from the repository after `npm install`: node examples/basic.mjs
import { attention, backends, Tensor } from 'fmha';

const [B, S, Hq, Hkv, D] = [2, 257, 8, 2, 64];
const random = (n) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
const q = Tensor.fromFloat32(random(B * S * Hq * D), [B, S, Hq, D], 'bfloat16');
const k = Tensor.fromFloat32(random(B * S * Hkv * D), [B, S, Hkv, D], 'bfloat16');
const v = Tensor.fromFloat32(random(B * S * Hkv * D), [B, S, Hkv, D], 'bfloat16');

const ticker = setInterval(() => process.stdout.write('.'), 1);  // the event loop stays free
const t0 = performance.now();
const { out, lse } = await attention(q, k, v, { causal: true, returnLse: true });
clearInterval(ticker);
console.log(`\n${backends().cpu.isa}: out ${out.dtype} [${out.shape}] lse [${lse.shape}] in ${(performance.now() - t0).toFixed(1)} ms`);
console.log('first output row:', Array.from(out.toFloat32().subarray(0, 4), (x) => x.toFixed(4)).join(' '));
