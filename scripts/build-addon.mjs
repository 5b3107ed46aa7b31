#!/usr/bin/env node
// Builds the native addon, build/Release/fmha.node. Run by `npm install` (the
// "install" script) and by `npm run build`. Plain JavaScript, no dependencies
// beyond cmake-js / node-gyp, which package.json lists.
//
//   1. cmake on the PATH -> cmake-js with CMakeLists.txt (CUDA kernels when nvcc
//      is found; FMHA_CUDA=AUTO|ON|OFF, FMHA_CUDA_ARCHS="80;90a" pass through).
//   2. cmake missing or cmake-js failed -> node-gyp with binding.gyp (CPU only).
//   3. both failed -> say which tools are missing and how to get them; exit 1.
//
// Environment:
//   FMHA_SKIP_BUILD=1     do nothing (prebuilt addon, or TypeScript-only work)
//   FMHA_BUILDER=auto|cmake|gyp   force one builder, no fallback (default auto)
//   FMHA_CUDA, FMHA_CUDA_ARCHS    see CMakeLists.txt (FMHA_CUDA=ON never falls back to gyp)
//   FMHA_BUILD_JOBS=N     parallel compile jobs (default: JOBS, else all cores)
//
// Node headers, offline: neither cmake-js nor node-gyp may download them (the
// default, from nodejs.org). We hand both a header directory through
// npm_config_nodedir / --nodedir: npm's nodedir config when it holds headers,
// else the prefix of the running node (<prefix>/include/node, present in
// official tarballs, distro -dev packages, nvm, Homebrew). For cmake-js, when
// neither exists, a directory built from the node-api-headers package (a
// cmake-js dependency) stands in: Node-API needs nothing else.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = path.join(root, 'build');
const output = path.join(buildDir, 'Release', 'fmha.node');
const require = createRequire(path.join(root, 'package.json'));
const isWin = process.platform === 'win32';

const log = (msg) => process.stderr.write(`[fmha] ${msg}\n`);

function env(name, fallback = '') {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : v;
}

/** First executable named `name` on the PATH, or null. */
function which(name) {
  const exts = isWin ? (process.env.PATHEXT || '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const p = path.join(dir, name + ext);
      try {
        fs.accessSync(p, fs.constants.X_OK);
        if (fs.statSync(p).isFile()) return p;
      } catch {
        // not here
      }
    }
  }
  return null;
}

function resolvePackage(name) {
  try {
    return path.dirname(require.resolve(`${name}/package.json`));
  } catch {
    return null;
  }
}

/** Runs `node <script> ...args` in the project root; true on exit status 0. */
function runNode(script, args, extraEnv = {}) {
  log(`$ ${path.relative(root, script)} ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [script, ...args], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, ...extraEnv },
  });
  if (r.error) log(`could not run ${script}: ${r.error.message}`);
  else if (r.signal) log(`${path.basename(script)} was killed by ${r.signal}`);
  return r.status === 0;
}

function seconds(t0) {
  return ((Date.now() - t0) / 1000).toFixed(1) + ' s';
}

// ------------------------------------------------------------ Node headers ---

const hasFile = (...p) => fs.existsSync(path.join(...p));

/** A Node install prefix whose include/node holds headers satisfying `need`. */
function findNodeDir(need) {
  const candidates = [
    env('npm_config_nodedir'),
    path.dirname(path.dirname(process.execPath)), // <prefix>/bin/node -> <prefix>
    path.dirname(process.execPath), // Windows: <prefix>\node.exe
  ].filter(Boolean);
  for (const dir of candidates) {
    if (need.every((f) => hasFile(dir, 'include', 'node', f))) return path.resolve(dir);
  }
  return null;
}

/**
 * Header directory for cmake-js. It checks for <dir>/include/node/node.h and
 * downloads the headers when it is missing; CMakeLists.txt only needs
 * node_api.h there (CMAKE_JS_INC = <dir>/include/node).
 */
function cmakeJsNodeDir() {
  const own = findNodeDir(['node.h', 'node_api.h']);
  if (own) return { dir: own, how: `Node's own headers in ${path.join(own, 'include', 'node')}` };
  const napiPkg = (() => {
    const cmakeJs = resolvePackage('cmake-js');
    try {
      const r = createRequire(path.join(cmakeJs || root, 'package.json'));
      return path.dirname(r.resolve('node-api-headers/package.json'));
    } catch {
      return resolvePackage('node-api-headers');
    }
  })();
  if (!napiPkg) return null;
  const shim = path.join(buildDir, 'node-api-headers');
  const inc = path.join(shim, 'include', 'node');
  fs.mkdirSync(inc, { recursive: true });
  for (const f of fs.readdirSync(path.join(napiPkg, 'include'))) {
    if (f.endsWith('.h')) fs.copyFileSync(path.join(napiPkg, 'include', f), path.join(inc, f));
  }
  // Only cmake-js looks for node.h (to decide not to download); nothing includes it.
  fs.writeFileSync(
    path.join(inc, 'node.h'),
    '#error "fmha builds against Node-API only (node_api.h); the V8/libuv headers are not installed"\n',
  );
  return { dir: shim, how: `the node-api-headers package (no Node headers next to ${process.execPath})` };
}

// ------------------------------------------------------------------ builders ---

function jobs() {
  const n = Number.parseInt(env('FMHA_BUILD_JOBS', env('JOBS')), 10);
  if (Number.isFinite(n) && n > 0) return n;
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length || 1;
}

function cudaMode() {
  const v = env('FMHA_CUDA', 'AUTO').toUpperCase();
  if (['1', 'TRUE', 'YES', 'ON'].includes(v)) return 'ON';
  if (['0', 'FALSE', 'NO', 'OFF'].includes(v)) return 'OFF';
  if (v !== 'AUTO') {
    log(`FMHA_CUDA must be AUTO, ON or OFF, got '${process.env.FMHA_CUDA}'`);
    process.exit(1);
  }
  return v;
}

function buildWithCMake(why) {
  const cmakeJsDir = resolvePackage('cmake-js');
  if (!cmakeJsDir) {
    why.push('cmake-js is not installed (run `npm install` in the package, which installs its dependencies first)');
    return false;
  }
  const cli = path.join(cmakeJsDir, 'bin', 'cmake-js');
  const headers = cmakeJsNodeDir();
  if (!headers) {
    why.push('no Node headers found for cmake-js (neither <node prefix>/include/node nor node-api-headers)');
    return false;
  }
  log(`cmake-js: Node-API headers from ${headers.how}`);
  const childEnv = { npm_config_nodedir: headers.dir };
  const cuda = cudaMode();
  // Passed on every configure, so a changed FMHA_CUDA / FMHA_CUDA_ARCHS replaces
  // the cached value. After `--` they go to cmake verbatim (empty values too).
  const defines = [
    `-DFMHA_CUDA=${cuda}`,
    `-DFMHA_CUDA_ARCHS=${env('FMHA_CUDA_ARCHS')}`,
    `-DNODE_EXECUTABLE=${process.execPath}`,
  ];
  const common = ['--directory', root, '--out', buildDir];
  const ninja = which('ninja') || which('ninja-build');
  if (!ninja && !isWin) common.push('--prefer-make');
  log(`cmake-js: FMHA_CUDA=${cuda}${env('FMHA_CUDA_ARCHS') ? ` FMHA_CUDA_ARCHS=${env('FMHA_CUDA_ARCHS')}` : ''}, ` +
      `${ninja ? 'ninja' : 'make'}, ${jobs()} jobs`);

  const configure = () => runNode(cli, ['configure', ...common, '--', ...defines], childEnv);
  let ok = configure();
  if (!ok && hasFile(buildDir, 'CMakeCache.txt')) {
    // A cache from another generator, compiler or source path cannot be reused.
    log('cmake-js: configure failed with an existing CMakeCache.txt; retrying from a clean build directory');
    fs.rmSync(path.join(buildDir, 'CMakeCache.txt'), { force: true });
    fs.rmSync(path.join(buildDir, 'CMakeFiles'), { recursive: true, force: true });
    ok = configure();
  }
  if (!ok) {
    why.push(cuda === 'ON' ? 'cmake configure failed (FMHA_CUDA=ON needs nvcc: see the CMake output above)'
                           : 'cmake configure failed (see the CMake output above)');
    return false;
  }
  if (!runNode(cli, ['build', ...common, '--parallel', String(jobs())], childEnv)) {
    why.push('the cmake-js build failed (see the compiler output above)');
    return false;
  }
  return true;
}

function buildWithGyp(why) {
  const gypDir = resolvePackage('node-gyp');
  if (!gypDir) {
    why.push('node-gyp is not installed (run `npm install` in the package, which installs its dependencies first)');
    return false;
  }
  const cli = path.join(gypDir, 'bin', 'node-gyp.js');
  const args = ['rebuild', '--jobs', String(jobs())];
  const nodedir = findNodeDir(['node_api.h', 'common.gypi']);
  if (nodedir) {
    args.push(`--nodedir=${nodedir}`);
    log(`node-gyp: Node headers from ${path.join(nodedir, 'include', 'node')}`);
  } else {
    log('node-gyp: no local Node headers (common.gypi) found; node-gyp will try to download them');
  }
  if (!runNode(cli, args, nodedir ? { npm_config_nodedir: nodedir } : {})) {
    why.push('the node-gyp build failed (see the output above)');
    return false;
  }
  return true;
}

/** Loads the addon in a child process: catches unresolved symbols at install time. */
function checkLoads() {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(output)})`], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, FMHA_NUM_THREADS: '1' },
  });
  if (r.status === 0) return true;
  if (r.error?.code === 'ETIMEDOUT') {
    log(`loading ${path.relative(root, output)} did not finish in 120 s`);
    return false;
  }
  log(`built ${path.relative(root, output)} but it does not load:\n${(r.stderr || r.error?.message || '').trim()}`);
  return false;
}

function missingTools() {
  const lines = [];
  const cxx = env('CXX') || which('c++') || which('g++') || which('clang++');
  if (!which('cmake')) {
    lines.push('cmake (>= 3.18): apt-get install cmake | dnf install cmake | brew install cmake | pip install cmake');
  }
  if (!cxx) {
    lines.push('a C++17 compiler: apt-get install g++ (or build-essential) | dnf install gcc-c++ | xcode-select --install');
  }
  if (!which('make') && !isWin) lines.push('make (node-gyp): apt-get install make | dnf install make');
  if (!which('python3') && !which('python')) lines.push('python3 (node-gyp): apt-get install python3 | brew install python');
  if (!which('ninja') && !which('ninja-build')) lines.push('(optional, faster) ninja: apt-get install ninja-build | pip install ninja');
  if (!which('nvcc') && !fs.existsSync('/usr/local/cuda/bin/nvcc')) {
    lines.push('(optional, CUDA kernels) the CUDA toolkit (nvcc), with cmake: https://developer.nvidia.com/cuda-downloads');
  }
  return lines;
}

// ---------------------------------------------------------------------- main ---

function main() {
  if (env('FMHA_SKIP_BUILD') === '1') {
    log('FMHA_SKIP_BUILD=1: not building the native addon');
    return 0;
  }
  const builder = env('FMHA_BUILDER', 'auto').toLowerCase();
  if (!['auto', 'cmake', 'cmake-js', 'gyp', 'node-gyp'].includes(builder)) {
    log(`FMHA_BUILDER must be auto, cmake or gyp, got '${builder}'`);
    return 1;
  }
  const t0 = Date.now();
  const why = [];
  const cuda = cudaMode();
  let ok = false;
  let used = '';

  if (builder !== 'gyp' && builder !== 'node-gyp') {
    if (which('cmake')) {
      log(`building with cmake-js (${which('cmake')})`);
      ok = buildWithCMake(why);
      used = 'cmake-js';
    } else {
      why.push('cmake is not on the PATH');
    }
    if (!ok && builder === 'auto' && cuda === 'ON') {
      why.push('FMHA_CUDA=ON: not falling back to the CPU-only node-gyp build');
    } else if (!ok && builder === 'auto') {
      log(`${why.join('; ')}: falling back to node-gyp (binding.gyp, CPU only, no CUDA kernels)`);
    }
  }
  if (!ok && (builder === 'gyp' || builder === 'node-gyp' || (builder === 'auto' && cuda !== 'ON'))) {
    if (cuda === 'ON') {
      why.push('FMHA_CUDA=ON needs the cmake build; node-gyp builds the CPU backend only');
    } else {
      log('building with node-gyp (CPU only)');
      ok = buildWithGyp(why);
      used = 'node-gyp';
    }
  }

  if (ok && !hasFile(output)) {
    why.push(`${used} reported success but ${path.relative(root, output)} is missing`);
    ok = false;
  }
  if (ok && !checkLoads()) {
    return 1;
  }
  if (!ok) {
    log(`the native addon was not built: ${why.join('; ')}`);
    const missing = missingTools();
    const required = missing.filter((line) => !line.startsWith('(optional'));
    if (missing.length) {
      log('tools not found:');
      for (const line of missing) log(`  - ${line}`);
    }
    log(`${required.length ? 'after installing the missing tools' : 'after fixing the errors above'}, ` +
        'run `npm rebuild fmha` (or `npm run build` in a clone of fmha). ' +
        'FMHA_BUILDER=gyp forces the CPU-only node-gyp build; FMHA_CUDA=OFF skips the CUDA kernels.');
    return 1;
  }
  log(`built ${path.relative(root, output)} with ${used} in ${seconds(t0)}`);
  return 0;
}

process.exitCode = main();
