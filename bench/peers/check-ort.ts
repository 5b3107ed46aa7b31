// Checks the onnxruntime-node peer against a float64 attention on odd shapes,
// then times it at B=1 H=8 S=4096 D=64 float32, so we know what the bench
// compares against. Run: npx tsc -p tsconfig.json && node dist/bench/peers/check-ort.js
import { Tensor } from '../../lib/index.js';
import { createOrtRunner, loadOrt, type OrtData, type OrtGraph, type OrtShape } from './ort.js';

const GRAPHS: OrtGraph[] = ['mha', 'gqa', 'matmul'];
const THREADS = 2;  // what the CPU bench gives every kernel
const WARMUP = 2, REPS = 5;
// Max abs error allowed: float32 accumulation order; float16 inputs and output rounding (2^-11).
const TOLERANCE = { float32: 1e-4, float16: 4e-3, bfloat16: 3e-2 };

function label(s: OrtShape): string {
  return `B=${s.B} H=${s.H} S=${s.S} D=${s.D} ${s.dtype}${s.causal ? ' causal' : ''}`;
}

// Uniform in [-2, 2): wide enough that softmax rows are far from uniform.
function random(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;  // xorshift32
    a[i] = (x / 2 ** 32) * 4 - 2;
  }
  return a;
}

/** softmax(q·kᵀ/√D)·v in float64, [B, S, H, D]; causal: query i sees keys j <= i. */
function reference(s: OrtShape, q: Float32Array, k: Float32Array, v: Float32Array): Float64Array {
  const { B, H, S, D } = s;
  const out = new Float64Array(B * S * H * D);
  const p = new Float64Array(S);
  const at = (b: number, i: number, h: number) => ((b * S + i) * H + h) * D;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < S; i++) {
        const n = s.causal ? i + 1 : S;
        let max = -Infinity;
        for (let j = 0; j < n; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[at(b, i, h) + d] * k[at(b, j, h) + d];
          p[j] = dot / Math.sqrt(D);
          max = Math.max(max, p[j]);
        }
        let sum = 0;
        for (let j = 0; j < n; j++) {
          p[j] = Math.exp(p[j] - max);
          sum += p[j];
        }
        for (let j = 0; j < n; j++)
          for (let d = 0; d < D; d++) out[at(b, i, h) + d] += (p[j] / sum) * v[at(b, j, h) + d];
      }
  return out;
}

// ORT takes float32 values or float16 bits; the reference reads the values ORT was given.
function input(s: OrtShape, seed: number): { data: OrtData; values: Float32Array } {
  const dims = [s.B, s.S, s.H, s.D];
  const t = Tensor.fromFloat32(random(s.B * s.S * s.H * s.D, seed), dims, s.dtype);
  return { data: t.data as OrtData, values: t.toFloat32() };
}

async function maxError(graph: OrtGraph, s: OrtShape): Promise<string> {
  const runner = await createOrtRunner(graph, s, THREADS);
  if ('unsupported' in runner) return `unsupported: ${runner.unsupported}`;
  try {
    const [q, k, v] = [input(s, 1), input(s, 2), input(s, 3)];
    const out = await runner.run(q.data, k.data, v.data);
    const got = s.dtype === 'float32' ? out : new Tensor(s.dtype, out, [out.length]).toFloat32();
    const want = reference(s, q.values, k.values, v.values);
    let err = 0;
    for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
    if (!(err <= TOLERANCE[s.dtype])) process.exitCode = 1;
    return err.toExponential(2);
  } finally {
    await runner.release();
  }
}

async function time(graph: OrtGraph, s: OrtShape): Promise<Record<string, string>> {
  const runner = await createOrtRunner(graph, s, THREADS);
  if ('unsupported' in runner) return { graph, shape: label(s), 'median ms': `unsupported: ${runner.unsupported}` };
  try {
    const n = s.B * s.S * s.H * s.D;
    const [q, k, v] = [random(n, 1), random(n, 2), random(n, 3)];
    // ORT's first runs grow its memory arena (the matmul graph holds S*S scores per head): not steady state.
    for (let r = 0; r < WARMUP; r++) await runner.run(q, k, v);
    const ms: number[] = [];
    for (let r = 0; r < REPS; r++) {
      const t0 = performance.now();
      await runner.run(q, k, v);
      ms.push(performance.now() - t0);
    }
    ms.sort((a, b) => a - b);
    const median = ms[REPS >> 1];
    const flops = (4 * s.B * s.H * s.S * s.S * s.D) / (s.causal ? 2 : 1);
    const gflops = flops / median / 1e6;
    return { graph, shape: label(s), 'median ms': median.toFixed(1), 'min ms': ms[0].toFixed(1), 'GFLOP/s (median)': gflops.toFixed(1) };
  } finally {
    await runner.release();
  }
}

if (!(await loadOrt())) {
  console.log('onnxruntime-node is not installed (npm install -D onnxruntime-node)');
  process.exit(0);
}

const checks: OrtShape[] = [];
for (const [B, H, S, D] of [[2, 3, 37, 24], [1, 8, 128, 64]] as const)
  for (const causal of [false, true]) checks.push({ B, H, S, D, causal, dtype: 'float32' });
for (const dtype of ['float16', 'bfloat16'] as const) checks.push({ B: 2, H: 3, S: 37, D: 24, causal: true, dtype });

const errors: Record<string, string>[] = [];
for (const s of checks) {
  const row: Record<string, string> = { shape: label(s) };
  for (const g of GRAPHS) row[g] = await maxError(g, s);
  errors.push(row);
}
console.log(`max abs error vs float64 (onnxruntime-node, ${THREADS} threads)`);
console.table(errors);

const timings: Record<string, string>[] = [];
for (const g of GRAPHS)
  for (const causal of [false, true]) timings.push(await time(g, { B: 1, H: 8, S: 4096, D: 64, causal, dtype: 'float32' }));
console.log(`timing: ${REPS} runs after ${WARMUP} warm-ups; FLOPs = 4·B·H·S²·D, halved for causal`);
console.table(timings);
