#!/usr/bin/env node
// Runs the compiled uvu suites (dist/test/**/*.test.js), one child process per
// suite file so that a crash or a load failure in one suite is counted and the
// others still run. Streams each suite's output, then prints `N passed, N failed`.
//
//   node scripts/run-tests.mjs              every suite; *.gpu.test.js only when backends().cuda.available
//   node scripts/run-tests.mjs --gpu        only the *.gpu.test.js suites; fails without a GPU
//   node scripts/run-tests.mjs tensor dtypes   only suites whose file name contains one of the words
//
// On an x86 machine the CPU kernel suites then run again under each narrower
// SIMD path (FMHA_ISA=avx2, scalar), so every microkernel table is tested, not
// only the one this machine picks; setting FMHA_ISA yourself skips that pass.
//
// Environment: FMHA_TEST_TIMEOUT_S (per suite, default 900) kills a hung suite.
// Exit code is non-zero iff anything failed.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const testDir = join(root, 'dist', 'test');
const args = process.argv.slice(2);
const gpuOnly = args.includes('--gpu');
const filters = args.filter((a) => !a.startsWith('--'));
const timeoutMs = Number(process.env.FMHA_TEST_TIMEOUT_S ?? 900) * 1000;

function findSuites(dir) {
  const out = [];
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findSuites(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

/**
 * Asks a child process (so that this runner never loads the addon) for backends():
 * whether CUDA is usable, and the CPU's SIMD path.
 */
function probeBackends() {
  const entry = pathToFileURL(join(root, 'dist', 'lib', 'index.js')).href;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e',
    `import(${JSON.stringify(entry)}).then((m) => { const b = m.backends(); ` +
    `process.stdout.write(JSON.stringify({ available: b.cuda.available, reason: b.cuda.reason ?? '', isa: b.cpu.isa })); })`],
  { cwd: root, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) {
    const lines = (r.stderr || '').split('\n').map((l) => l.trim()).filter(Boolean);
    const why = lines.find((l) => /^\w*Error: /.test(l)) ?? lines[lines.length - 1] ?? `exit ${r.status}`;
    return { available: false, reason: `could not load the package: ${why}`, isa: '' };
  }
  try { return JSON.parse(r.stdout); } catch { return { available: false, reason: 'could not read backends()', isa: '' }; }
}

// eslint-disable-next-line no-control-regex
const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

function runSuite(file, env = {}) {
  return new Promise((resolve) => {
    // --expose-gc: suites that check inputs stay alive while a call is in flight collect garbage on purpose
    const child = spawn(process.execPath, ['--enable-source-maps', '--expose-gc', file], {
      cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
    });
    let text = '';
    child.stdout.on('data', (d) => { process.stdout.write(d); text += d; });
    child.stderr.on('data', (d) => { process.stderr.write(d); text += d; });
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const plain = stripAnsi(text);
      const num = (label) => {
        const m = [...plain.matchAll(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'gm'))];
        return m.length ? Number(m[m.length - 1][1]) : undefined;
      };
      const total = num('Total'), passed = num('Passed'), skipped = num('Skipped') ?? 0;
      let p = 0, f = 0, note = '';
      if (total === undefined || passed === undefined) {
        f = 1;
        note = timedOut ? `timed out after ${timeoutMs / 1000} s` : `crashed or failed to load (exit ${code ?? signal}, no uvu summary)`;
      } else {
        p = passed;
        f = Math.max(0, total - passed);
        if (code !== 0 && f === 0) {
          f = 1;
          note = timedOut ? `timed out after ${timeoutMs / 1000} s` : `exited with ${code ?? signal} after its tests`;
        }
      }
      resolve({ passed: p, failed: f, skipped, note });
    });
  });
}

let suites = findSuites(testDir);
if (suites.length === 0) {
  console.error(`run-tests: no suites under ${relative(root, testDir)} (run \`tsc -p tsconfig.json\` first)`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
if (filters.length) suites = suites.filter((s) => filters.some((w) => relative(testDir, s).includes(w)));

const isGpu = (s) => s.endsWith('.gpu.test.js');
const backends = probeBackends();
let extraFailed = 0;
if (gpuOnly) {
  suites = suites.filter(isGpu);
  if (!backends.available) {
    console.error(`run-tests --gpu: CUDA is not available (${backends.reason}); the GPU suites cannot run`);
    extraFailed++;
    suites = [];
  }
} else if (suites.some(isGpu) && !backends.available) {
  console.log(`run-tests: skipping ${suites.filter(isGpu).length} GPU suite(s): CUDA not available (${backends.reason})`);
  suites = suites.filter((s) => !isGpu(s));
}

// [suite, extra environment] pairs: every suite as is, then the CPU kernel
// suites under each narrower SIMD path.
const KERNEL_SUITES = ['attention', 'varlen', 'vanilla', 'dtypes', 'gqa', 'decode'];
const NARROWER = { avx512: ['avx2', 'scalar'], avx2: ['scalar'] };
const runs = suites.map((s) => [s, {}]);
if (!gpuOnly && !process.env.FMHA_ISA) {
  const kernels = suites.filter((s) => !isGpu(s) && KERNEL_SUITES.some((w) => basename(s).startsWith(w)));
  for (const isa of NARROWER[backends.isa] ?? []) runs.push(...kernels.map((s) => [s, { FMHA_ISA: isa }]));
}

let passed = 0, failed = extraFailed, skipped = 0;
const problems = [];
const t0 = Date.now();
for (const [file, env] of runs) {
  const name = relative(testDir, file) + (env.FMHA_ISA ? ` [FMHA_ISA=${env.FMHA_ISA}]` : '');
  console.log(`\n# ${name}`);
  const r = await runSuite(file, env);
  passed += r.passed;
  failed += r.failed;
  skipped += r.skipped;
  if (r.failed) problems.push(`${name}: ${r.failed} failed${r.note ? ` (${r.note})` : ''}`);
}

console.log(`\nsuites: ${runs.length}, ${((Date.now() - t0) / 1000).toFixed(1)} s${skipped ? `, ${skipped} skipped` : ''}`);
for (const p of problems) console.log(`  ✘ ${p}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
