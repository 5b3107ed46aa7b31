// Peak resident memory of one attention call, run in a fresh process so the
// number is not polluted by other calls: `node dist/bench/rss.js fused|vanilla S [D] [H]`.
// Prints JSON { kernel, S, peakRssBytes, baselineRssBytes, ms } or { error }.
import { attentionSync, vanillaAttentionSync, FmhaError } from '../lib/index.js';
import { qkv } from './shapes.js';

const [kernel = 'fused', S = '2048', D = '64', H = '8'] = process.argv.slice(2);
const shape = { B: 1, H: Number(H), S: Number(S), D: Number(D), causal: false, dtype: 'float32' as const };
const [q, k, v] = qkv(shape);
const baselineRssBytes = process.resourceUsage().maxRSS * 1024;
const t0 = performance.now();
try {
  (kernel === 'vanilla' ? vanillaAttentionSync : attentionSync)(q, k, v);
  const ms = performance.now() - t0;
  console.log(JSON.stringify({ kernel, S: shape.S, peakRssBytes: process.resourceUsage().maxRSS * 1024, baselineRssBytes, ms }));
} catch (err) {
  const code = err instanceof FmhaError ? err.code : 'unknown';
  console.log(JSON.stringify({ kernel, S: shape.S, error: code, message: (err as Error).message }));
}
