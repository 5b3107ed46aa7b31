// Peak resident memory of one attention call, run in a fresh process so the
// number is not polluted by other calls: `node dist/bench/rss.js fused|vanilla S [D] [H]`.
// Prints JSON { kernel, S, peakRssBytes, baselineRssBytes, inputBytes, ms } or { error }.
import { readFileSync } from 'node:fs';
import { attentionSync, vanillaAttentionSync, FmhaError } from '../lib/index.js';
import { qkv } from './shapes.js';

// High-water RSS of this process. On Linux getrusage's maxrss survives exec, so a
// child of a large parent (the bench, with onnxruntime loaded) would report the
// parent's peak; /proc's VmHWM belongs to this address space only.
function peakRssBytes(): number {
  try {
    const m = /VmHWM:\s*(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch { /* not Linux */ }
  return process.resourceUsage().maxRSS * 1024;
}

const [kernel = 'fused', S = '2048', D = '64', H = '8'] = process.argv.slice(2);
const shape = { B: 1, H: Number(H), S: Number(S), D: Number(D), causal: false, dtype: 'float32' as const };
const [q, k, v] = qkv(shape);
const inputBytes = q.data.byteLength + k.data.byteLength + v.data.byteLength;
const baselineRssBytes = peakRssBytes();
const t0 = performance.now();
try {
  (kernel === 'vanilla' ? vanillaAttentionSync : attentionSync)(q, k, v);
  const ms = performance.now() - t0;
  console.log(JSON.stringify({ kernel, S: shape.S, peakRssBytes: peakRssBytes(), baselineRssBytes, inputBytes, ms }));
} catch (err) {
  const code = err instanceof FmhaError ? err.code : 'unknown';
  console.log(JSON.stringify({ kernel, S: shape.S, error: code, message: (err as Error).message }));
}
