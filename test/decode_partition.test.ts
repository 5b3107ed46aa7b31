// The decode partition alone (core/decode_partition, DESIGN §5), through
// native.planDecode(tiles, strategy, workers) → { pieces: [unit, begin, end][], tasks }.
// Structural properties over many seeded random inputs (every unit covered
// exactly once, in order; lean: one task per worker, equal contiguous ranges
// across unit boundaries; split: FlashDecoding's fixed near-equal splits;
// single: one piece per unit), a few plans worked out by hand, and bad input.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { native } from '../lib/native.js';
import { FmhaError } from '../lib/index.js';
import { rng } from './reference.js';
import { assertFmhaError, catchSync } from './helpers.js';

type Strategy = 'lean' | 'split' | 'single';
type Piece = [number, number, number];
interface Plan { pieces: Piece[]; tasks: number[] }

const plan = (tiles: number[], strategy: Strategy, workers: number): Plan =>
  native.planDecode(tiles, strategy, workers) as Plan;

const WORKERS = [1, 2, 3, 7, 64, 132, 1000] as const;

/** Properties every strategy's plan has. Returns the pieces grouped by unit. */
function checkCommon(label: string, tiles: number[], p: Plan): Piece[][] {
  const U = tiles.length;
  assert.ok(Array.isArray(p.pieces) && Array.isArray(p.tasks), `${label}: pieces and tasks are arrays`);
  const byUnit: Piece[][] = Array.from({ length: U }, () => []);
  let prevUnit = -1, prevBegin = -1;
  for (const [i, pc] of p.pieces.entries()) {
    assert.is(pc.length, 3, `${label}: piece ${i} is [unit, begin, end]`);
    const [u, b, e] = pc;
    if (!(Number.isInteger(u) && u >= 0 && u < U)) assert.unreachable(`${label}: piece ${i} unit ${u} out of [0, ${U})`);
    // (unit, begin) order, strictly increasing
    if (u < prevUnit || (u === prevUnit && b <= prevBegin)) {
      assert.unreachable(`${label}: piece ${i} [${pc}] out of (unit, begin) order after unit ${prevUnit} begin ${prevBegin}`);
    }
    prevUnit = u; prevBegin = b;
    if (e < b) assert.unreachable(`${label}: piece ${i} [${pc}] has end < begin`);
    if (e === b && tiles[u] !== 0) assert.unreachable(`${label}: piece ${i} [${pc}] is empty but unit ${u} has ${tiles[u]} tiles`);
    byUnit[u]!.push(pc);
  }
  for (let u = 0; u < U; u++) {
    const ps = byUnit[u]!;
    if (ps.length === 0) assert.unreachable(`${label}: unit ${u} (${tiles[u]} tiles) has no piece`);
    if (tiles[u] === 0) {
      assert.is(ps.length, 1, `${label}: empty unit ${u} has exactly one (empty) piece`);
      assert.equal(ps[0], [u, 0, 0], `${label}: empty unit ${u}'s piece`);
      continue;
    }
    // contiguous cover of [0, tiles): no gap, no overlap
    let at = 0;
    for (const [, b, e] of ps) {
      if (b !== at) assert.unreachable(`${label}: unit ${u}: piece starts at ${b}, expected ${at} (gap or overlap); pieces ${JSON.stringify(ps)}`);
      at = e;
    }
    if (at !== tiles[u]) assert.unreachable(`${label}: unit ${u}: pieces end at ${at}, expected ${tiles[u]}`);
  }
  // tasks: non-decreasing boundaries from 0 to pieces.length
  const t = p.tasks;
  assert.ok(t.length >= 1, `${label}: at least one task boundary`);
  assert.is(t[0], 0, `${label}: tasks[0]`);
  assert.is(t[t.length - 1], p.pieces.length, `${label}: tasks end at pieces.length`);
  for (let i = 1; i < t.length; i++) if (t[i]! < t[i - 1]!) assert.unreachable(`${label}: tasks decrease at ${i}: ${t[i - 1]} → ${t[i]}`);
  return byUnit;
}

/** Lean (stream-K): one task per worker, ±1 tile, contiguous in global tile order. */
function checkLean(label: string, tiles: number[], workers: number, p: Plan): void {
  checkCommon(label, tiles, p);
  const U = tiles.length;
  if (U === 0) { assert.equal(p.tasks, [0], `${label}: no unit, no task`); return; }
  assert.is(p.tasks.length - 1, workers, `${label}: one task per worker`);
  const prefix = [0];
  for (const n of tiles) prefix.push(prefix[prefix.length - 1]! + n);
  const total = prefix[U]!;
  let min = Infinity, max = -Infinity, globalAt = 0;
  for (let w = 0; w < workers; w++) {
    let n = 0;
    for (let i = p.tasks[w]!; i < p.tasks[w + 1]!; i++) {
      const [u, b, e] = p.pieces[i]!;
      if (e === b) continue;  // an empty unit's piece: no tile
      // contiguous in global tile order: each tile piece starts where the previous one (of any task) ended
      if (prefix[u]! + b !== globalAt) assert.unreachable(`${label}: task ${w} piece [${p.pieces[i]}] starts at global tile ${prefix[u]! + b}, expected ${globalAt}`);
      globalAt = prefix[u]! + e;
      n += e - b;
    }
    // the design's cut: worker w owns global tiles [total·w/W, total·(w+1)/W)
    const want = Math.floor(total * (w + 1) / workers) - Math.floor(total * w / workers);
    if (n !== want) assert.unreachable(`${label}: task ${w} has ${n} tiles, expected ${want} (total ${total}, ${workers} workers)`);
    min = Math.min(min, n); max = Math.max(max, n);
  }
  assert.is(globalAt, total, `${label}: every tile assigned`);
  assert.ok(max - min <= 1, `${label}: tiles per task from ${min} to ${max} (equal ±1)`);
  assert.ok(p.pieces.length <= U + workers - 1, `${label}: ${p.pieces.length} pieces > units ${U} + workers ${workers} − 1 (a worker boundary cuts at most one unit)`);
}

/** Split (FlashDecoding): each unit in min(n, ⌈W/U⌉) near-equal pieces, one task per piece. */
function checkSplit(label: string, tiles: number[], workers: number, p: Plan): void {
  const byUnit = checkCommon(label, tiles, p);
  const U = tiles.length;
  if (U === 0) { assert.equal(p.tasks, [0], `${label}: no unit, no task`); return; }
  const splits = Math.max(1, Math.ceil(workers / U));
  byUnit.forEach((ps, u) => {
    const n = tiles[u]!;
    const want = Math.max(1, Math.min(n, splits));
    if (ps.length !== want) assert.unreachable(`${label}: unit ${u} (${n} tiles) has ${ps.length} pieces, expected ${want}`);
    const sizes = ps.map(([, b, e]) => e - b);
    if (Math.max(...sizes) - Math.min(...sizes) > 1) assert.unreachable(`${label}: unit ${u} piece sizes ${sizes} differ by more than 1`);
  });
  assert.equal(p.tasks, Array.from({ length: p.pieces.length + 1 }, (_, i) => i), `${label}: one task per piece`);
}

/** Single: one piece (the whole unit) and one task per unit. */
function checkSingle(label: string, tiles: number[], p: Plan): void {
  checkCommon(label, tiles, p);
  assert.equal(p.pieces, tiles.map((n, u) => [u, 0, n]), `${label}: one whole piece per unit`);
  assert.equal(p.tasks, Array.from({ length: tiles.length + 1 }, (_, i) => i), `${label}: one task per unit`);
}

/** Random tile counts: many zeros, ones and small counts, some large ones. */
function randomTiles(r: () => number, units: number): number[] {
  return Array.from({ length: units }, () => {
    const x = r();
    if (x < 0.2) return 0;
    if (x < 0.35) return 1;
    if (x < 0.85) return 1 + Math.floor(r() * 12);
    return Math.floor(r() * 800);
  });
}

// ---------------------------------------------------------------------------
const props = suite('planDecode: properties over seeded random inputs');

const UNIT_COUNTS = [0, 1, 2, 3, 5, 8, 13, 31, 64, 100, 131, 200, 257, 300];

props('lean: every unit covered once in order; one task per worker; equal ±1 contiguous ranges; cuts ≤ workers − 1', () => {
  const r = rng(60001);
  let n = 0;
  for (const units of UNIT_COUNTS) for (const workers of WORKERS) for (let rep = 0; rep < 3; rep++) {
    const tiles = randomTiles(r, units);
    checkLean(`lean units=${units} W=${workers} #${rep} tiles=${JSON.stringify(tiles.slice(0, 12))}…`, tiles, workers, plan(tiles, 'lean', workers));
    n++;
  }
  assert.ok(n > 250);
});

props('lean: all-zero units, fewer tiles than workers, one huge unit, zeros between cut units', () => {
  const cases: [number[], number][] = [
    [[0, 0, 0], 1], [[0, 0, 0], 7], [[0], 1000], [[1], 1000], [[3, 0, 0, 2], 64],
    [[1000000], 132], [[0, 5, 0, 0, 5, 0], 3], [[0, 0, 9, 0, 0], 2], [[7, 0, 0, 0, 0, 0, 7], 7],
    [Array(300).fill(1), 7], [Array(300).fill(1), 1000], [Array(300).fill(0), 132],
  ];
  for (const [tiles, workers] of cases) checkLean(`lean ${JSON.stringify(tiles.slice(0, 10))} W=${workers}`, tiles, workers, plan(tiles, 'lean', workers));
});

props('split: each unit in min(n, ⌈W/U⌉) near-equal pieces (≥ 1), one task per piece', () => {
  const r = rng(60002);
  for (const units of UNIT_COUNTS) for (const workers of WORKERS) for (let rep = 0; rep < 3; rep++) {
    const tiles = randomTiles(r, units);
    checkSplit(`split units=${units} W=${workers} #${rep}`, tiles, workers, plan(tiles, 'split', workers));
  }
});

props('single: one whole piece and one task per unit, whatever the worker count', () => {
  const r = rng(60003);
  for (const units of UNIT_COUNTS) for (const workers of WORKERS) {
    const tiles = randomTiles(r, units);
    checkSingle(`single units=${units} W=${workers}`, tiles, plan(tiles, 'single', workers));
  }
});

props('deterministic: the same input gives the same plan', () => {
  const tiles = randomTiles(rng(60004), 77);
  for (const s of ['lean', 'split', 'single'] as const) {
    for (const w of [3, 132]) assert.equal(plan(tiles, s, w), plan(tiles, s, w), `${s} W=${w}`);
  }
});
props.run();

// ---------------------------------------------------------------------------
const exact = suite('planDecode: small plans worked out by hand');

// Lean: total T tiles, worker w owns global tiles [⌊T·w/W⌋, ⌊T·(w+1)/W⌋). An empty
// unit goes to the first worker whose range still lies ahead of it (or the last).
const EXACT: { name: string; tiles: number[]; s: Strategy; w: number; pieces: Piece[]; tasks: number[] }[] = [
  // T = 8, W = 2: w0 [0, 4), w1 [4, 8). Unit 0 = globals 0..4 is cut at 4; the empty
  // unit 1 sits at global 5 < 8, so w1 takes it; unit 2 = globals 5..7.
  { name: '[5, 0, 3] lean W=2', tiles: [5, 0, 3], s: 'lean', w: 2,
    pieces: [[0, 0, 4], [0, 4, 5], [1, 0, 0], [2, 0, 3]], tasks: [0, 1, 4] },
  // T = 8, W = 3: w0 [0, 2), w1 [2, 5), w2 [5, 8). Unit 0 cut at 2 and ends at 5 = w1's
  // end; the empty unit 1 (at 5) is not before w1's end 5, so w2 takes it.
  { name: '[5, 0, 3] lean W=3', tiles: [5, 0, 3], s: 'lean', w: 3,
    pieces: [[0, 0, 2], [0, 2, 5], [1, 0, 0], [2, 0, 3]], tasks: [0, 1, 2, 4] },
  // T = 3, W = 5: ranges [0,0), [0,1), [1,1), [1,2), [2,3): empty tasks carry nothing.
  { name: '[3] lean W=5', tiles: [3], s: 'lean', w: 5,
    pieces: [[0, 0, 1], [0, 1, 2], [0, 2, 3]], tasks: [0, 0, 1, 1, 2, 3] },
  // T = 10, W = 4: [0,2) [2,5) [5,7) [7,10). Units: 0 = 0..3, 1 = 4..9.
  { name: '[4, 6] lean W=4', tiles: [4, 6], s: 'lean', w: 4,
    pieces: [[0, 0, 2], [0, 2, 4], [1, 0, 1], [1, 1, 3], [1, 3, 6]], tasks: [0, 1, 3, 4, 5] },
  // T = 0: only the last worker emits the (empty) pieces.
  { name: '[0, 0] lean W=3', tiles: [0, 0], s: 'lean', w: 3, pieces: [[0, 0, 0], [1, 0, 0]], tasks: [0, 0, 0, 2] },
  // Leading empty unit: at global 0 < w0's end 2 → w0.
  { name: '[0, 4] lean W=2', tiles: [0, 4], s: 'lean', w: 2, pieces: [[0, 0, 0], [1, 0, 2], [1, 2, 4]], tasks: [0, 2, 3] },
  { name: 'no unit, lean', tiles: [], s: 'lean', w: 7, pieces: [], tasks: [0] },
  // Split: ⌈W/U⌉ = ⌈7/3⌉ = 3 splits; n·i/k boundaries: 5 → [0,1,3,5]; 0 → one empty; 2 → min(2, 3) = 2.
  { name: '[5, 0, 2] split W=7', tiles: [5, 0, 2], s: 'split', w: 7,
    pieces: [[0, 0, 1], [0, 1, 3], [0, 3, 5], [1, 0, 0], [2, 0, 1], [2, 1, 2]], tasks: [0, 1, 2, 3, 4, 5, 6] },
  // Split with more units than workers: ⌈2/4⌉ = 1 split each.
  { name: '[3, 1, 0, 9] split W=2', tiles: [3, 1, 0, 9], s: 'split', w: 2,
    pieces: [[0, 0, 3], [1, 0, 1], [2, 0, 0], [3, 0, 9]], tasks: [0, 1, 2, 3, 4] },
  // Split 10 tiles in ⌈8/1⌉ = 8: boundaries ⌊10i/8⌋ = 0,1,2,3,5,6,7,8,10.
  { name: '[10] split W=8', tiles: [10], s: 'split', w: 8,
    pieces: [[0, 0, 1], [0, 1, 2], [0, 2, 3], [0, 3, 5], [0, 5, 6], [0, 6, 7], [0, 7, 8], [0, 8, 10]],
    tasks: [0, 1, 2, 3, 4, 5, 6, 7, 8] },
  { name: 'no unit, split', tiles: [], s: 'split', w: 3, pieces: [], tasks: [0] },
  { name: '[5, 0, 3] single W=64', tiles: [5, 0, 3], s: 'single', w: 64, pieces: [[0, 0, 5], [1, 0, 0], [2, 0, 3]], tasks: [0, 1, 2, 3] },
  { name: 'no unit, single', tiles: [], s: 'single', w: 1, pieces: [], tasks: [0] },
];
for (const c of EXACT) {
  exact(c.name, () => {
    const p = plan(c.tiles, c.s, c.w);
    assert.equal(p.pieces, c.pieces, `${c.name}: pieces`);
    assert.equal(p.tasks, c.tasks, `${c.name}: tasks`);
  });
}
exact.run();

// ---------------------------------------------------------------------------
const bad = suite('planDecode: bad input → FmhaError ERR_FMHA_ARGUMENT');

const BAD: [string, () => unknown][] = [
  ['tiles not an array', () => native.planDecode(new Int32Array([1, 2]) as unknown as number[], 'lean', 2)],
  ['a negative tile count', () => native.planDecode([1, -1], 'lean', 2)],
  ['a fractional tile count', () => native.planDecode([1.5], 'lean', 2)],
  ['a NaN tile count', () => native.planDecode([NaN], 'split', 2)],
  ['a string tile count', () => native.planDecode(['3'] as unknown as number[], 'lean', 2)],
  ["strategy 'auto' (not a concrete plan)", () => native.planDecode([1], 'auto' as Strategy, 2)],
  ['an unknown strategy', () => native.planDecode([1], 'stream-k' as Strategy, 2)],
  ['workers 0', () => native.planDecode([1], 'lean', 0)],
  ['workers NaN', () => native.planDecode([1], 'lean', NaN)],
  ['workers above 1e6', () => native.planDecode([1], 'lean', 2e6)],
];
for (const [name, fn] of BAD) {
  bad(name, () => {
    const err = catchSync(fn);
    assert.instance(err, FmhaError, name);
    assertFmhaError(err, 'ERR_FMHA_ARGUMENT', [], name);
  });
}
bad.run();
