// Bad input never crashes and every failure is an FmhaError: a seeded random
// mix of malformed tensors (ranks, dims, dtypes, data kinds, strides) and options,
// half of them on otherwise valid q/k/v, through both kernels' Sync forms.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { attentionSync, vanillaAttentionSync, FmhaError } from '../lib/index.js';
import { rng } from './reference.js';

const test = suite('fuzz');
const r = rng(4242);
const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;

const dims = (): number[] =>
  Array.from({ length: pick([0, 1, 3, 4, 4, 4, 5]) }, () => pick([0, 1, 2, 3, 7, -1, 1.5, 2 ** 31, NaN]));

function garbageTensor(): unknown {
  const shape = dims();
  const want = shape.reduce((a, b) => a * (Number.isFinite(b) && b >= 0 ? b : 1), 1) + pick([0, 0, 1, -1]);
  const n = Math.max(0, Math.min(want, 1 << 16));
  const data = pick([() => new Float32Array(n), () => new Uint16Array(n), () => new Float64Array(n), () => [1, 2], () => null])();
  const t: Record<string, unknown> = { dtype: pick(['float32', 'float16', 'bfloat16', 'int8']), shape, data };
  if (r() < 0.3) t.strides = shape.map(() => pick([0, 1, 2, 100, -1, 2 ** 60]));
  return t;
}

function garbageOptions(): unknown {
  return pick([
    () => undefined, () => null, () => 5, () => ({ causal: pick([true, 1]) }),
    () => ({ window: [pick([-2, -1, 0, 3]), pick([-1, 2])] }), () => ({ softcap: pick([-1, 0, 30, NaN]) }),
    () => ({ alibiSlopes: pick([new Float32Array(2), new Float64Array(2)]) }),
    () => ({ seqlensK: pick([new Int32Array(1).fill(5), new Int32Array(2)]) }),
    () => ({ bias: garbageTensor() }), () => ({ out: garbageTensor() }), () => ({ scale: pick([Infinity, 0.1]) }),
    () => ({ backend: pick(['cuda', 'gpu']) }), () => ({ casual: true }),
  ])();
}

const valid = () => ({ dtype: 'float32', shape: [1, 3, 2, 4], data: new Float32Array(24).fill(0.3) });

test('3000 random malformed calls: only FmhaErrors, no crash', () => {
  let rejected = 0;
  for (let i = 0; i < 3000; i++) {
    const args = (r() < 0.5 ? [valid(), valid(), valid(), garbageOptions()]
      : [garbageTensor(), garbageTensor(), garbageTensor(), garbageOptions()]) as Parameters<typeof attentionSync>;
    try {
      pick([attentionSync, vanillaAttentionSync])(...args);
    } catch (e) {
      if (!(e instanceof FmhaError)) assert.unreachable(`call ${i} threw ${(e as Error).name}: ${(e as Error).message}`);
      rejected++;
    }
  }
  assert.ok(rejected > 1000, `most calls are malformed (rejected ${rejected})`);
});

test.run();
