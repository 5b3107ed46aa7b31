// Async behaviour: sync == async bitwise, many concurrent calls, the event loop
// stays free, AbortSignal (already aborted; aborted mid-flight).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { attention, attentionSync, vanillaAttention, vanillaAttentionSync, Tensor, type DType } from '../lib/index.js';
import { bitwiseEqual, referenceAttention } from './reference.js';
import { randomQKV, run, checkResult, KINDS, describe, type Kind } from './helpers.js';

const par = suite('async: parity with sync, concurrency, event loop');

par('sync and async give bitwise-equal out and lse (fused and vanilla, every dtype)', async () => {
  for (const dtype of ['float32', 'float16', 'bfloat16'] as DType[]) {
    const { q, k, v } = randomQKV(9000, { B: 2, Sq: 130, Sk: 200, Hq: 4, Hkv: 2, D: 64, Dv: 48, dtype });
    const opts = { causal: true, softcap: 8, alibiSlopes: new Float32Array([0.1, 0.2, 0.3, 0.4]) };
    for (const kind of KINDS) {
      const s = await run(kind, 'sync', q, k, v, opts);
      const a = await run(kind, 'async', q, k, v, opts);
      assert.ok(bitwiseEqual(s.out.data, a.out.data), `${kind} ${dtype}: out sync == async`);
      assert.ok(bitwiseEqual(s.lse.data, a.lse.data), `${kind} ${dtype}: lse sync == async`);
    }
  }
});

par('32 concurrent async calls (mixed kinds, shapes, dtypes, options) all correct', async () => {
  const jobs = Array.from({ length: 32 }, (_, i) => {
    const dtype: DType = (['float32', 'float16', 'bfloat16'] as const)[i % 3];
    const kind: Kind = i % 2 ? 'vanilla' : 'fused';
    const shape = { B: 1 + (i % 2), Sq: 5 + 7 * i, Sk: 90 - 2 * i, Hq: 4, Hkv: i % 4 === 0 ? 1 : 2, D: [8, 40, 64, 80][i % 4]!, dtype };
    const { q, k, v } = randomQKV(9100 + i, shape);
    const opts = i % 3 === 0 ? { causal: true } : i % 3 === 1 ? { window: [4, 4] as [number, number] } : {};
    return { q, k, v, opts, kind, promise: run(kind, 'async', q, k, v, opts) };
  });
  const results = await Promise.all(jobs.map((j) => j.promise));
  results.forEach((res, i) => {
    const j = jobs[i]!;
    checkResult(`concurrent #${i} (${j.kind} ${j.q.dtype})`, res, j.q, j.k, j.v, j.opts);
  });
});

par('concurrent calls sharing the same inputs agree bitwise', async () => {
  const { q, k, v } = randomQKV(9200, { B: 1, Sq: 100, Sk: 100, Hq: 2, D: 64 });
  const outs = await Promise.all(Array.from({ length: 12 }, (_, i) => attention(q, k, v, { causal: i % 2 === 0 })));
  for (let i = 2; i < outs.length; i++) assert.ok(bitwiseEqual(outs[i]!.data, outs[i % 2]!.data), `call ${i}`);
});

par('the event loop keeps turning while a long async call runs', async () => {
  const { q, k, v } = randomQKV(9300, { B: 1, Sq: 2048, Sk: 2048, Hq: 4, D: 64 });
  let ticks = 0;
  const timer = setInterval(() => { ticks++; }, 5);
  const t0 = performance.now();
  let settledAt = 0;
  const p = attention(q, k, v).then((r) => { settledAt = performance.now(); return r; });
  // the call returned at once: we are still on the same turn
  const returnedIn = performance.now() - t0;
  const out = await p;
  clearInterval(timer);
  const elapsed = settledAt - t0;
  assert.ok(returnedIn < 50, `attention() returned its Promise in ${returnedIn.toFixed(1)} ms; it must not compute on the calling thread`);
  assert.equal([...out.shape], [1, 2048, 4, 64]);
  if (elapsed >= 100) {
    assert.ok(ticks >= elapsed / 5 / 10, `only ${ticks} timer ticks in ${elapsed.toFixed(0)} ms: the event loop was blocked`);
  }
});
par('async calls never hold a libuv thread: fs work proceeds while the pool is busy', async () => {
  const { readFile } = await import('node:fs/promises');
  const { q, k, v } = randomQKV(9310, { B: 1, Sq: 1024, Sk: 1024, Hq: 4, D: 64 });
  // calibrate: how long one call takes here
  let t = performance.now();
  await attention(q, k, v);
  const one = performance.now() - t;
  const calls = Array.from({ length: 8 }, () => attention(q, k, v));
  t = performance.now();
  // 8 concurrent readFile calls use libuv's threadpool (4 threads by default)
  await Promise.all(Array.from({ length: 8 }, () => readFile(new URL(import.meta.url))));
  const fsTime = performance.now() - t;
  await Promise.all(calls);
  const total = performance.now() - t;
  if (total > 200) {
    assert.ok(fsTime < total / 2, `fs.readFile took ${fsTime.toFixed(0)} ms while 8 attention calls (≈ ${one.toFixed(0)} ms each) took ${total.toFixed(0)} ms: libuv threads are held`);
  }
});

par('inputs stay alive while a call is in flight, even with no other reference (GC forced)', async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  const shape = { B: 1, Sq: 700, Sk: 700, Hq: 4, D: 64 };
  const expected = (() => { const t = randomQKV(9320, shape); return attentionSync(t.q, t.k, t.v, { causal: true }); })();
  // the tensors exist only inside this closure; nothing else references them after the call starts
  const p = (() => { const t = randomQKV(9320, shape); return attention(t.q, t.k, t.v, { causal: true }); })();
  for (let i = 0; i < 5; i++) {
    gc?.();
    new Float32Array(1 << 20).fill(1); // churn the heap
    await new Promise((r) => setImmediate(r));
  }
  const out = await p;
  assert.ok(bitwiseEqual(out.data, expected.data), 'result unaffected by garbage collection');
});
par.run();

// ---------------------------------------------------------------------------
const abort = suite('async: AbortSignal');

function isAbortError(err: unknown): boolean {
  return (err as { name?: string })?.name === 'AbortError';
}

abort('an already-aborted signal rejects with AbortError (Promise form never throws) and Sync throws', async () => {
  const { q, k, v } = randomQKV(9400, { B: 1, Sq: 8, Sk: 8, Hq: 1, D: 8 });
  const ctl = new AbortController();
  ctl.abort();
  for (const fn of [attention, vanillaAttention]) {
    let p: Promise<unknown> | undefined;
    try { p = fn(q, k, v, { signal: ctl.signal }); } catch (err) { assert.unreachable(`threw synchronously: ${describe(err)}`); }
    const err = await p!.then(() => undefined, (e: unknown) => e);
    assert.ok(isAbortError(err), `${fn.name}: rejected with ${describe(err)}`);
  }
  for (const fn of [attentionSync, vanillaAttentionSync]) {
    let err: unknown;
    try { fn(q, k, v, { signal: ctl.signal }); } catch (e) { err = e; }
    assert.ok(isAbortError(err), `${fn.name}: threw ${describe(err)}`);
  }
  // AbortSignal.abort() (static) works too
  const err = await attention(q, k, v, { signal: AbortSignal.abort() }).then(() => undefined, (e: unknown) => e);
  assert.ok(isAbortError(err), describe(err));
});

abort('a signal that never fires changes nothing', async () => {
  const { q, k, v } = randomQKV(9401, { B: 1, Sq: 40, Sk: 40, Hq: 2, D: 32 });
  const ctl = new AbortController();
  for (const kind of KINDS) {
    const res = await run(kind, 'async', q, k, v, { causal: true, signal: ctl.signal });
    checkResult(`${kind} with a live signal`, res, q, k, v, { causal: true });
    const res2 = await run(kind, 'sync', q, k, v, { causal: true, signal: ctl.signal });
    assert.ok(bitwiseEqual(res.out.data, res2.out.data));
  }
  ctl.abort(); // after settling: nothing to observe, nothing thrown
});

async function midFlight(kind: Kind, S: number, H: number, D: number, abortAfterMs: number) {
  const { q, k, v } = randomQKV(9500, { B: 1, Sq: S, Sk: S, Hq: H, D });
  const fn = kind === 'fused' ? attention : vanillaAttention;
  // a quarter-size call (1/16 of the work) estimates how long the full one would take
  const small = randomQKV(9501, { B: 1, Sq: S / 4, Sk: S / 4, Hq: H, D });
  const ts = performance.now();
  await fn(small.q, small.k, small.v);
  const fullEstimate = 16 * (performance.now() - ts);

  const ctl = new AbortController();
  const t0 = performance.now();
  const p = fn(q, k, v, { signal: ctl.signal });
  setTimeout(() => ctl.abort(), abortAfterMs);
  const err = await p.then(() => undefined, (e: unknown) => e);
  const elapsed = performance.now() - t0;
  if (err === undefined && fullEstimate < abortAfterMs * 4) {
    // the machine finished before the abort could land; nothing to conclude
    return { skipped: true, elapsed, fullEstimate };
  }
  assert.ok(isAbortError(err), `${kind}: aborted mid-flight, expected AbortError, got ${err === undefined ? 'a result' : describe(err)} after ${elapsed.toFixed(0)} ms (full call ≈ ${fullEstimate.toFixed(0)} ms)`);
  assert.ok(elapsed < abortAfterMs + Math.max(0.5 * fullEstimate, 250), `${kind}: settled ${elapsed.toFixed(0)} ms after start; the full call takes ≈ ${fullEstimate.toFixed(0)} ms: abort is not checked between tiles`);
  return { skipped: false, elapsed, fullEstimate };
}

abort('aborting mid-flight rejects with AbortError, promptly (fused)', async () => {
  await midFlight('fused', 4096, 8, 64, 30);
});

abort('aborting mid-flight rejects with AbortError, promptly (vanilla)', async () => {
  await midFlight('vanilla', 2048, 8, 64, 20);
});

abort('after an aborted call, the next calls are correct (the pool recovers)', async () => {
  const big = randomQKV(9600, { B: 1, Sq: 2048, Sk: 2048, Hq: 4, D: 64 });
  const ctl = new AbortController();
  const p = attention(big.q, big.k, big.v, { signal: ctl.signal });
  const { q, k, v } = randomQKV(9601, { B: 2, Sq: 50, Sk: 60, Hq: 2, D: 32 });
  const queued = attention(q, k, v, { causal: true, returnLse: true }); // queued behind the aborted one
  ctl.abort();
  await p.catch(() => undefined);
  checkResult('queued behind an abort', await queued, q, k, v, { causal: true });
  checkResult('after an abort', await attention(q, k, v, { returnLse: true }), q, k, v, {});
  checkResult('sync after an abort', attentionSync(q, k, v, { returnLse: true, window: [3, 3] }), q, k, v, { window: [3, 3] });
});

abort('one signal aborts several in-flight calls; unrelated calls complete', async () => {
  const ctl = new AbortController();
  const big = randomQKV(9700, { B: 1, Sq: 2048, Sk: 2048, Hq: 4, D: 64 });
  const a = attention(big.q, big.k, big.v, { signal: ctl.signal });
  const b = vanillaAttention(big.q, big.k, big.v, { signal: ctl.signal });
  const { q, k, v } = randomQKV(9701, { B: 1, Sq: 30, Sk: 30, Hq: 2, D: 16 });
  const other = attention(q, k, v, { returnLse: true });
  setTimeout(() => ctl.abort(), 5);
  const [ea, eb] = await Promise.all([a.then(() => 'resolved', (e: unknown) => e), b.then(() => 'resolved', (e: unknown) => e)]);
  // each either finished before the abort or rejected with AbortError; nothing else
  for (const e of [ea, eb]) assert.ok(e === 'resolved' || isAbortError(e), describe(e));
  const ref = referenceAttention(q, k, v, {});
  checkResult('unrelated call', await other, q, k, v, {}, ref);
  assert.instance((await other).out, Tensor);
});
abort.run();
