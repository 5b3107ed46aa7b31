#!/usr/bin/env node
// fmha command line: `fmha info` describes this build and machine; `fmha bench`
// runs a short benchmark against vanilla and onnxruntime-node (the full suite is `npm run bench`).
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { backends } from './backends.js';

function packageVersion(): string {
  const url = new URL('../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

function info(): void {
  const b = backends();
  const lines = [
    `fmha ${packageVersion()} (node ${process.version}, ${process.platform}-${process.arch})`,
    `cpu:  ${cpus()[0]?.model?.trim() ?? 'unknown'}`,
    `      isa ${b.cpu.isa}, amx-bf16 ${b.cpu.amx ? 'yes' : 'no'}, threads ${b.cpu.threads} of ${availableParallelism()} cores`,
    b.cuda.available
      ? `cuda: ${b.cuda.devices.length} device(s)`
      : `cuda: unavailable (${b.cuda.reason ?? 'unknown reason'})`,
    ...b.cuda.devices.map(
      (d) => `      [${d.index}] ${d.name}, sm_${d.computeCapability.replace('.', '')}, ` +
        `${(d.totalMemory / 2 ** 30).toFixed(1)} GiB, ${d.multiprocessors} SMs`,
    ),
  ];
  console.log(lines.join('\n'));
}

const usage = `usage: fmha <command>
  info     version, CPU SIMD path and threads, CUDA devices or why there are none
  bench    a short benchmark: fused vs vanilla vs onnxruntime-node (when installed), GFLOP/s
           against the measured FMA peak, a results table, JSON and an SVG chart in bench/results/
           --full: the whole grid (also \`npm run bench\`); --filter RE: shapes whose label matches RE`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'info':
      info();
      return 0;
    case 'bench': {
      const { runCpuBench } = await import('../bench/cpu.js');
      const f = rest.indexOf('--filter');
      await runCpuBench({ full: rest.includes('--full'), progress: true, filter: f >= 0 ? new RegExp(rest[f + 1] ?? '') : undefined });
      return 0;
    }
    case undefined:
    case '-h':
    case '--help':
      console.log(usage);
      return cmd === undefined ? 1 : 0;
    default:
      console.error(`fmha: unknown command '${cmd}'\n${usage}`);
      return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => { console.error(err); process.exitCode = 1; },
);
