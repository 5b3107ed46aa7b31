// backends() and setNumThreads(): the shape of the report, thread counts 1 and 2
// agreeing within float32 rounding, bad counts rejected, FMHA_NUM_THREADS at load.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { backends, measureCpuPeak, measureMemoryBandwidth, setNumThreads, FmhaError, attention, vanillaAttentionSync } from '../lib/index.js';
import { relFrobenius, readValues, bitwiseEqual } from './reference.js';
import { randomQKV, run, checkResult, assertFmhaError, catchSync, KINDS } from './helpers.js';

const entry = new URL('../lib/index.js', import.meta.url).href;
const root = fileURLToPath(new URL('../../', import.meta.url));

const b = suite('backends()');

b('reports the CPU path, thread count, AMX, and CUDA availability', () => {
  const info = backends();
  assert.type(info, 'object');
  assert.ok(['avx512', 'avx2', 'neon', 'scalar'].includes(info.cpu.isa), `cpu.isa = ${info.cpu.isa}`);
  assert.ok(Number.isInteger(info.cpu.threads) && info.cpu.threads >= 1, `cpu.threads = ${info.cpu.threads}`);
  assert.type(info.cpu.amx, 'boolean');
  assert.type(info.cuda.available, 'boolean');
  assert.ok(Array.isArray(info.cuda.devices));
  if (!info.cuda.available) {
    assert.type(info.cuda.reason, 'string');
    assert.ok(info.cuda.reason!.length > 0, 'an unavailable CUDA says why');
    assert.is(info.cuda.devices.length, 0);
  } else {
    assert.ok(info.cuda.devices.length > 0);
    for (const d of info.cuda.devices) {
      assert.ok(Number.isInteger(d.index));
      assert.type(d.name, 'string');
      assert.match(d.computeCapability, /^\d+\.\d+$/);
      assert.ok(d.totalMemory > 0 && d.multiprocessors > 0);
    }
  }
  // a fresh object each time: mutating it changes nothing
  (info.cpu as { threads: number }).threads = 12345;
  assert.is.not(backends().cpu.threads, 12345);
});
b('measureCpuPeak reports a positive rate on the current threads and path; bad durations are errors', () => {
  const p = measureCpuPeak(0.02);
  assert.ok(p.gflops > 0 && Number.isFinite(p.gflops), `gflops = ${p.gflops}`);
  assert.is(p.threads, backends().cpu.threads);
  assert.is(p.isa, backends().cpu.isa);
  for (const bad of [0, -1, 11, NaN, '1'] as unknown[])
    assertFmhaError(catchSync(() => measureCpuPeak(bad as number)), 'ERR_FMHA_ARGUMENT', [/seconds/], `measureCpuPeak(${String(bad)})`);
});

b('measureMemoryBandwidth reads the buffer it names at a positive rate; bad sizes are errors', () => {
  const m = measureMemoryBandwidth(16);
  assert.ok(m.gbps > 0 && Number.isFinite(m.gbps), `gbps = ${m.gbps}`);
  assert.is(m.bytes, 16 * 2 ** 20);
  assert.is(m.threads, backends().cpu.threads);
  for (const bad of [0, 15, 16.5, 16385, NaN, '64'] as unknown[])
    assertFmhaError(catchSync(() => measureMemoryBandwidth(bad as number)), 'ERR_FMHA_ARGUMENT', [/mib/], `measureMemoryBandwidth(${String(bad)})`);
});

b.run();

// ---------------------------------------------------------------------------
const th = suite('setNumThreads');

th('1 and 2 threads give results within float32 rounding of each other and the reference', async () => {
  const initial = backends().cpu.threads;
  try {
    const { q, k, v } = randomQKV(11000, { B: 2, Sq: 257, Sk: 300, Hq: 4, Hkv: 2, D: 80 });
    const opts = { causal: true, softcap: 10 };
    const results: Record<string, Awaited<ReturnType<typeof run>>> = {};
    for (const n of [1, 2]) {
      setNumThreads(n);
      assert.is(backends().cpu.threads, n, 'backends() reports the new count');
      for (const kind of KINDS) {
        for (const mode of ['sync', 'async'] as const) {
          const res = await run(kind, mode, q, k, v, opts);
          checkResult(`${kind}/${mode} threads=${n}`, res, q, k, v, opts);
          results[`${kind}/${mode}/${n}`] = res;
        }
        // same thread count, same inputs: bitwise
        assert.ok(bitwiseEqual(results[`${kind}/sync/${n}`]!.out.data, results[`${kind}/async/${n}`]!.out.data), `${kind} threads=${n}: sync == async`);
      }
    }
    for (const kind of KINDS) {
      const err = relFrobenius(readValues(results[`${kind}/sync/1`]!.out), readValues(results[`${kind}/sync/2`]!.out));
      assert.ok(err < 1e-6, `${kind}: 1 vs 2 threads differ by ${err}`);
    }
  } finally {
    setNumThreads(initial);
  }
});

th('bad counts → FmhaError ERR_FMHA_ARGUMENT, and the count is unchanged', () => {
  const before = backends().cpu.threads;
  for (const n of [0, -1, 1.5, NaN, Infinity, -Infinity, 1e9, 2 ** 31]) {
    const err = catchSync(() => setNumThreads(n));
    assert.instance(err, FmhaError, `setNumThreads(${n})`);
    assertFmhaError(err, 'ERR_FMHA_ARGUMENT', [], `setNumThreads(${n})`);
    assert.is(backends().cpu.threads, before, `setNumThreads(${n}) left the count alone`);
  }
  for (const n of ['2', null, undefined, {}] as unknown[]) {
    const err = catchSync(() => setNumThreads(n as number));
    assert.instance(err, FmhaError, `setNumThreads(${String(n)})`);
  }
});

th('a new count applies to calls started after it; in-flight calls are unaffected', async () => {
  const initial = backends().cpu.threads;
  try {
    setNumThreads(2);
    const { q, k, v } = randomQKV(11100, { B: 1, Sq: 600, Sk: 600, Hq: 4, D: 64 });
    const p = attention(q, k, v, { returnLse: true });
    setNumThreads(1);
    const res = await p;
    checkResult('count changed mid-flight', res, q, k, v, {});
    const again = vanillaAttentionSync(q, k, v, { returnLse: true });
    checkResult('after the change', again, q, k, v, {});
  } finally {
    setNumThreads(initial);
  }
});
th.run();

// ---------------------------------------------------------------------------
const env = suite('FMHA_NUM_THREADS is read at load');

env('FMHA_NUM_THREADS=3 → backends().cpu.threads === 3 in a fresh process', () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e',
    `const m = await import(${JSON.stringify(entry)}); process.stdout.write(String(m.backends().cpu.threads));`],
  { cwd: root, env: { ...process.env, FMHA_NUM_THREADS: '3' }, encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout.trim(), '3');
});
env.run();
