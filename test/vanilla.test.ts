// The vanilla baseline (materialized score matrix), float32: the same suites as
// the fused kernel, plus fused-vs-vanilla agreement.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { relFrobenius, compareLse, readValues } from './reference.js';
import { randomQKV, run } from './helpers.js';
import { coreSuites } from './core.js';

coreSuites('vanilla', 'float32');

const agree = suite('vanilla float32: agrees with fused');
agree('same shapes and options, within float32 rounding of each other', async () => {
  const { q, k, v } = randomQKV(4000, { B: 2, Sq: 100, Sk: 150, Hq: 4, Hkv: 2, D: 64, Dv: 32 });
  const opts = { causal: true, softcap: 20, alibiSlopes: new Float32Array([0.1, 0.2, 0.3, 0.4]), window: [60, 10] as [number, number] };
  const f = await run('fused', 'async', q, k, v, opts);
  const va = await run('vanilla', 'async', q, k, v, opts);
  assert.equal([...f.out.shape], [...va.out.shape]);
  const err = relFrobenius(readValues(va.out), readValues(f.out));
  assert.ok(err < 2e-5, `fused vs vanilla relative error ${err}`);
  const c = compareLse(readValues(va.lse), readValues(f.lse), 2e-5);
  assert.ok(c.ok, c.message);
});
agree.run();
