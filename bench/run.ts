/**
 * m-socket benchmarks (issue 6): copy costs, throughput against node:net and a C epoll server,
 * scale (accept rate, memory per connection), with the targets marked met / missed.
 *
 *   npm run bench                    full run (~5-10 min on 2 cores)
 *   npm run bench -- --quick         about a minute, smaller counts, fewer runs
 *   npm run bench -- --json FILE     also write every figure as JSON
 *   npm run bench -- --charts DIR    also write DIR/results.json and an SVG chart per table (bench/charts for RESULTS.md)
 *   npm run bench -- --only copy,throughput,scale,datagram,io_uring   run some sections (io_uring:
 *                                    bench/io-uring.ts, the io_uring backend against epoll, C epoll
 *                                    and C io_uring; not in a plain `npm run bench`)
 *   npm run bench -- --datagram-mode closed|blast|both       the datagram echo loads (default both)
 *   npm run bench -- --profile       CPU-profile the m-socket server under load instead (node --cpu-prof)
 *
 * Progress lines (`[3/46 00:07] throughput ...`, one per measured step) go to stderr, the tables to
 * stdout. Loopback only. Every child process is killed at the end, on errors and on Ctrl-C.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { cpus } from 'node:os';
import { spawnSync } from 'node:child_process';
import { copyPlan, runCopyCosts, type TargetCheck } from './copy-costs.ts';
import { runThroughput, throughputPlan } from './throughput.ts';
import { runIoUring, uringPlan } from './io-uring.ts';
import { runScale, scalePlan } from './scale.ts';
import { runDatagramSection } from './datagram-section.ts';
import { DATAGRAM_MODES, parseModes, type DatagramMode } from './datagram.ts';
import { Progress } from './lib/progress.ts';
import { writeCharts, type BenchJson } from './lib/charts.ts';
import { runProfile } from './profile.ts';
import { buildC } from './lib/build.ts';
import { installCleanup, machine } from './lib/proc.ts';
import { render, type Table } from './lib/table.ts';

function parseArgs(argv: string[]) {
  const opts = {
    quick: false, json: null as string | null, charts: null as string | null, only: null as Set<string> | null, profile: false, markdown: false,
    datagramModes: [...DATAGRAM_MODES] as DatagramMode[],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') opts.quick = true;
    else if (a === '--json') opts.json = argv[++i] ?? null;
    else if (a === '--charts') opts.charts = argv[++i] ?? null;
    else if (a === '--only') opts.only = new Set((argv[++i] ?? '').split(','));
    else if (a === '--profile') opts.profile = true;
    else if (a === '--markdown') opts.markdown = true;
    else if (a === '--datagram-mode') opts.datagramModes = parseModes(argv[++i] ?? '');
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run bench -- [--quick] [--json FILE] [--charts DIR] [--only copy,throughput,scale,datagram,io_uring] [--datagram-mode closed|blast|both] [--profile] [--markdown]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (opts.json === null && argv.includes('--json')) throw new Error('--json needs a file name');
  if (opts.charts === null && argv.includes('--charts')) throw new Error('--charts needs a folder name');
  return opts;
}

async function main(): Promise<void> {
  installCleanup();
  const opts = parseArgs(process.argv.slice(2));
  const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);
  const started = Date.now();
  const built = buildC();
  if (built.reason) log(`note: ${built.reason}`);
  if (!machine.taskset) log('note: taskset unavailable or fewer than 2 cores: server and client are not pinned');

  if (opts.profile) {
    await runProfile({ built, log, quick: opts.quick });
    return;
  }
  const env = {
    date: new Date().toISOString(),
    node: process.version,
    cores: machine.cores,
    cpu: cpus()[0]?.model ?? 'unknown',
    clockTicks: machine.clockTicks,
    taskset: machine.taskset,
    nofileHard: machine.nofileHard,
    loadavgAtStart: spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout.trim(),
    mode: opts.quick ? 'quick' : 'full',
    command: ['npm run bench --', ...process.argv.slice(2)].join(' '),
  };
  const want = (s: string) => opts.only === null || opts.only.has(s);
  // The io_uring section runs only when asked by name: it is long, and its own issue's.
  const wantUring = opts.only !== null && opts.only.has('io_uring');
  const progress = new Progress(
    (want('copy') ? copyPlan(opts.quick).steps : 0) +
      (want('throughput') ? throughputPlan(opts.quick).steps : 0) +
      (want('scale') ? scalePlan(opts.quick).steps : 0) +
      (wantUring ? uringPlan({ quick: opts.quick }).steps : 0),
  );
  const tables: Table[] = [];
  const checks: TargetCheck[] = [];
  const json: Record<string, unknown> = { env };
  if (want('copy')) {
    const r = await runCopyCosts({ quick: opts.quick, log, progress });
    tables.push(...r.tables);
    checks.push(...r.checks);
    json.copyCosts = r.results;
  }
  if (want('throughput')) {
    const r = await runThroughput({ quick: opts.quick, built, log, progress });
    if (r.skipped) log(`throughput skipped: ${r.skipped}`);
    tables.push(...r.tables);
    checks.push(...r.checks);
    json.throughput = r.results;
  }
  if (want('scale')) {
    const r = await runScale({ quick: opts.quick, built, log, progress });
    if (r.skipped) log(`scale skipped: ${r.skipped}`);
    tables.push(...r.tables);
    checks.push(...r.checks);
    json.scale = { memory: r.memory, accept: r.accept };
  }
  if (wantUring) {
    const r = await runIoUring({ quick: opts.quick, built, log, progress });
    if (r.skipped) log(`io_uring skipped: ${r.skipped}`);
    tables.push(...r.tables);
    checks.push(...r.checks);
    json.ioUring = r.results;
  }
  if (want('datagram')) {
    // Its own progress lines (bench/datagram.ts and bench/gso.ts count their steps).
    const r = await runDatagramSection({ quick: opts.quick, modes: opts.datagramModes, log });
    tables.push(...r.tables);
    checks.push(...r.checks);
    json.datagram = r.results;
  }
  const targetTable: Table = {
    title: wantUring ? 'Targets (issues 6, 14 and 15)' : 'Targets (issues 6 and 14)',
    header: ['target', 'measured', 'status'],
    rows: checks.map((c) => [c.target, c.value, c.met === null ? 'n/a' : c.met ? 'met' : 'MISSED']),
  };
  tables.push(targetTable);
  json.targets = checks;
  json.elapsedS = (Date.now() - started) / 1000;
  console.log(`m-socket bench (${env.mode}) ${env.date}  node ${env.node}, ${env.cores} x ${env.cpu}, load ${env.loadavgAtStart}`);
  for (const t of tables) console.log(render(t, opts.markdown) + (opts.markdown ? '\n' : ''));
  console.log(`\nelapsed ${json.elapsedS} s`);
  if (opts.json !== null) {
    writeFileSync(opts.json, JSON.stringify(json, null, 2) + '\n');
    log(`wrote ${opts.json}`);
  }
  if (opts.charts !== null) {
    mkdirSync(opts.charts, { recursive: true });
    const file = join(opts.charts, 'results.json');
    writeFileSync(file, JSON.stringify(json, null, 2) + '\n');
    for (const path of writeCharts(json as BenchJson, opts.charts, relative(process.cwd(), file))) log(`wrote ${path}`);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
