/**
 * The io_uring benchmark (issue 15, "Benchmarks"): m-socket's io_uring backend beside its epoll
 * backend, node:net, the C epoll server (bench/c/echo_server.c) and a C io_uring server of the
 * prototype's design (bench/c/uring_echo.c, the anchor's: "the io_uring limit"), side by side in
 * one run.
 *
 * Servers (each its own process, pinned to core 0; the C load generators on core 1):
 * - `m-socket`, `m-socket io_uring`: the echo server of bench/servers/msocket-echo.ts on a Reactor
 *   (Node's event loop), on epoll and on io_uring;
 * - `m-socket loop`, `m-socket io_uring loop`: the same handler in its own blocking loop
 *   (`new Multiplexer({ backend })`, `wait` on the main thread), standing for a worker's own loop;
 * - `node:net` (`socket.pipe(socket)`), `C epoll`, `C io_uring` (RECV link mode, the anchor's
 *   default) and, in full runs, `C io_uring multi` (multishot receive into a buffer ring, the
 *   receive path m-socket's backend uses).
 * Shapes: closed-loop ping-pong of 64 B over 1 and 50 connections (bench/c/pingpong.c); paced
 * ping-pong, 50,000 req/s offered over 50 connections (bench/c/paced.c: the server is not
 * saturated, so what counts is the CPU it spends per request at a given load); bulk echo of 64 KiB
 * writes over one connection (bench/c/bulk.c); connection churn, 8 connections in flight, each
 * connecting, echoing 1 byte and closing (bench/c/connect_loop.c: the accept path, where the
 * io_uring servers' multishot accept takes the accept4 out).
 * Measures per server and shape: req/s (MB/s for bulk), server CPU (utime + stime of the whole
 * process from /proc, around the client run) per request (per MB), and syscalls per request (per
 * MB), counted in a separate short run with `perf stat -e raw_syscalls:sys_enter -p PID` plus the
 * `syscalls:sys_enter_<name>` tracepoints of the calls that matter here (perf slows syscalls, so
 * the timed runs are not counted). Without perf, or where it may not count, the syscall columns
 * say so and the rest runs.
 * Servers run one at a time, in alternating order over the repetitions (forward, then reversed),
 * every shape against each; figures are medians with their spread, and ratios are run by run
 * (repetition i of one server against repetition i of the other), summarised as the median and
 * the range.
 *
 *   node --import tsx bench/io-uring.ts [--quick] [--reps N] [--seconds S] [--shape NAME]... [--json FILE]
 *   npm run bench -- --only io_uring [--quick]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildC, type Built } from './lib/build.ts';
import { Child, installCleanup, machine, parseKV, run } from './lib/proc.ts';
import { CLIENT_CORE, startServer, type Server, type ServerKind } from './lib/servers.ts';
import { summarize, type Summary } from './lib/stats.ts';
import { pairedRatio } from './lib/charts.ts';
import type { Spread } from './lib/svg-chart.ts';
import { num, ratioCell, render, type Cell, type Table } from './lib/table.ts';
import { Progress } from './lib/progress.ts';
import type { TargetCheck } from './copy-costs.ts';

export type UringShape = 'ping-pong 1 conn' | 'ping-pong 50 conns' | 'paced 50k req/s, 50 conns' | 'bulk echo' | 'connection churn';
export const URING_SHAPES: UringShape[] = ['ping-pong 1 conn', 'ping-pong 50 conns', 'paced 50k req/s, 50 conns', 'bulk echo', 'connection churn'];
export const URING_SERVERS: ServerKind[] = [
  'm-socket', 'm-socket io_uring', 'm-socket io_uring send', 'm-socket loop', 'm-socket io_uring loop', 'm-socket io_uring send loop', 'node:net', 'C epoll', 'C io_uring',
];
/** The paced shape's offered load, req/s over all connections. */
export const PACED_RATE = 50_000;
/** The syscalls broken out (tracepoints `syscalls:sys_enter_<name>`); the total is raw_syscalls:sys_enter. */
export const SYSCALL_NAMES = ['io_uring_enter', 'epoll_wait', 'epoll_pwait', 'recvfrom', 'sendto', 'read', 'write', 'accept4'] as const;
export const RAW_EVENT = 'raw_syscalls:sys_enter';

/** Each io_uring server and the epoll server it is compared with. */
export const PEERS: [ServerKind, ServerKind, string][] = [
  ['m-socket io_uring', 'm-socket', 'Reactor'],
  ['m-socket io_uring send', 'm-socket', 'Reactor, ringSend'],
  ['m-socket io_uring loop', 'm-socket loop', 'own loop'],
  ['m-socket io_uring send loop', 'm-socket loop', 'own loop, ringSend'],
];

export interface UringPlanOptions {
  quick: boolean;
  reps?: number;
  secs?: number;
  /** Only these shapes (default: every one). */
  shapes?: readonly UringShape[] | undefined;
}

/** What a run measures: repetitions, durations, servers and shapes, and the progress step count. */
export function uringPlan(options: UringPlanOptions) {
  const { quick } = options;
  const reps = options.reps ?? (quick ? 2 : 5);
  const secs = options.secs ?? (quick ? 1.5 : 5);
  const warm = quick ? 0.5 : 1;
  const bulkMiB = quick ? 128 : 1024;
  /** The syscall runs: seconds of load (ping-pong, paced) and MiB (bulk). */
  const syscallSecs = quick ? 1 : 2;
  const syscallMiB = quick ? 64 : 256;
  const servers: ServerKind[] = quick ? [...URING_SERVERS] : [...URING_SERVERS, 'C io_uring multi'];
  const shapes = options.shapes === undefined || options.shapes.length === 0 ? [...URING_SHAPES] : URING_SHAPES.filter((s) => options.shapes!.includes(s));
  const timedSteps = reps * servers.length * shapes.length;
  const syscallSteps = servers.length * shapes.length;
  return { reps, secs, warm, bulkMiB, syscallSecs, syscallMiB, servers, shapes, timedSteps, syscallSteps, steps: timedSteps + syscallSteps };
}

/** Servers in the order of repetition `rep`: as listed in even ones, reversed in odd ones. */
export function serverOrder<T>(servers: readonly T[], rep: number): T[] {
  return rep % 2 === 0 ? [...servers] : [...servers].reverse();
}

/** Syscalls counted in one run: per request (per MB for bulk), in all and by name. */
export interface SyscallCount {
  /** Requests (MB for bulk) the run made. */
  units: number;
  /** raw_syscalls:sys_enter per unit. */
  total: number;
  /** Per unit, for each tracepoint perf counted. */
  byName: Partial<Record<(typeof SYSCALL_NAMES)[number], number>>;
}

export interface UringResult {
  server: ServerKind;
  shape: UringShape;
  /** req/s (achieved, for paced) or MB/s (bulk). */
  rate: Summary;
  p50us?: Summary;
  p99us?: Summary;
  /** Paced: measured requests sent more than 1 ms after they were due. */
  late?: Summary;
  /** µs of server CPU per request, or per MB echoed (bulk). */
  serverCpu: Summary;
  /** Server CPU over the run, % of one core. */
  serverCpuPct: Summary;
  clientCpuPct: Summary;
  /** null: not counted (no perf, perf refused, or the run failed). */
  syscalls: SyscallCount | null;
}

/**
 * Parses `perf stat -x,` output: event name -> count. Lines that are comments, empty, or say
 * `<not counted>` / `<not supported>` are left out. null when no event was counted at all.
 */
export function parsePerfStat(text: string): Map<string, number> | null {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const fields = line.split(',');
    if (fields.length < 3) continue;
    const value = Number(fields[0]);
    const event = fields[2].trim();
    if (event === '' || !Number.isFinite(value) || fields[0].trim() === '') continue;
    out.set(event, value);
  }
  return out.size === 0 ? null : out;
}

/** Counts per unit from perf's counts; null without the total. */
export function syscallsPerUnit(counts: Map<string, number> | null, units: number): SyscallCount | null {
  if (counts === null || !(units > 0)) return null;
  const raw = counts.get(RAW_EVENT);
  if (raw === undefined) return null;
  const byName: SyscallCount['byName'] = {};
  for (const name of SYSCALL_NAMES) {
    const n = counts.get(`syscalls:sys_enter_${name}`);
    if (n !== undefined) byName[name] = n / units;
  }
  return { units, total: raw / units, byName };
}

/** "0.97x (0.95-0.99)": the median of the run-by-run ratios and their range. */
export function spreadCell(s: Spread | null): string {
  if (s === null || !Number.isFinite(s.median)) return '-';
  return s.max > s.min ? `${s.median.toFixed(2)}x (${s.min.toFixed(2)}-${s.max.toFixed(2)})` : `${s.median.toFixed(2)}x`;
}

function find(results: readonly UringResult[], server: ServerKind, shape: UringShape): UringResult | undefined {
  return results.find((r) => r.server === server && r.shape === shape);
}

/** Run-by-run ratio of one server's figure to another's, for a shape. */
export function cpuRatio(results: readonly UringResult[], a: ServerKind, b: ServerKind, shape: UringShape): Spread | null {
  return pairedRatio(find(results, a, shape)?.serverCpu, find(results, b, shape)?.serverCpu);
}

/**
 * The issue's targets, as ratios of server CPU per request (per MB) in the same run, each on the
 * Reactor and in the own loop: at 50 connections <= 0.98x C epoll and <= 1.03x C io_uring; paced
 * at 50k req/s <= 0.95x C epoll; at 1 connection and in bulk echo <= 1.0x the epoll backend. Met
 * or missed by the median of the run-by-run ratios; the range is in the value.
 */
export function uringChecks(results: readonly UringResult[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  const check = (target: string, s: Spread | null, limit: number, runs: number) => {
    const value = s === null ? 'not measured' : `${spreadCell(s)}${runs > 1 ? `, ${runs} runs` : ''}`;
    out.push({ target, value, met: s === null ? null : s.median <= limit });
  };
  const runsOf = (a: ServerKind, shape: UringShape) => find(results, a, shape)?.serverCpu.runs.filter(Number.isFinite).length ?? 0;
  for (const [uring, epoll, where] of PEERS) {
    const s50: UringShape = 'ping-pong 50 conns';
    check(`io_uring (${where}) CPU/request at 50 conns <= 0.98x C epoll`, cpuRatio(results, uring, 'C epoll', s50), 0.98, runsOf(uring, s50));
    check(`io_uring (${where}) CPU/request at 50 conns <= 1.03x C io_uring`, cpuRatio(results, uring, 'C io_uring', s50), 1.03, runsOf(uring, s50));
    const paced: UringShape = 'paced 50k req/s, 50 conns';
    check(`io_uring (${where}) CPU/request paced at 50k req/s <= 0.95x C epoll`, cpuRatio(results, uring, 'C epoll', paced), 0.95, runsOf(uring, paced));
    for (const shape of ['ping-pong 1 conn', 'bulk echo'] as const) {
      const unit = shape === 'bulk echo' ? 'CPU/MB' : 'CPU/request';
      // The peer is the epoll server of the same loop (ringSend has no epoll counterpart).
      const peer = where.replace(', ringSend', '');
      check(`io_uring (${where}) ${unit} ${shape} <= 1.0x epoll (${peer})`, cpuRatio(results, uring, epoll, shape), 1.0, runsOf(uring, shape));
    }
  }
  return out;
}

const perUnit = (v: number | undefined) => (v === undefined ? '-' : num(v, 3));

/** The tables: every figure per server and shape, the syscalls, and the ratios of the io_uring servers. */
export function uringTables(results: readonly UringResult[], info: { reps: number; bulkMiB: number; pinned: boolean; syscalls: string | null }): Table[] {
  const pinned = info.pinned ? 'servers pinned to core 0, clients to core 1' : 'no taskset / fewer than 2 cores: not pinned';
  const main: Table = {
    title: `io_uring bench: per server and shape (${info.reps} runs each; ${pinned})`,
    header: ['shape', 'server', 'rate', 'p50 µs', 'p99 µs', 'late', 'server CPU', 'server CPU %', 'client CPU %', 'syscalls'],
    rows: results.map((r) => [r.shape, r.server, r.rate, r.p50us, r.p99us, r.late, r.serverCpu, r.serverCpuPct, r.clientCpuPct, r.syscalls === null ? '-' : num(r.syscalls.total, 3)]),
    notes: [
      `rate = req/s (ping-pong; paced: achieved, of ${PACED_RATE.toLocaleString('en-US')} offered), MB/s (bulk echo of ${info.bulkMiB} MiB, 64 KiB writes; MB = 1e6 B) or connections/s (churn: connect, 1-byte echo, close; 8 in flight); p50/p99: latency (paced: from the time a request was due); late (paced): measured requests sent more than 1 ms after they were due.`,
      'server CPU = µs of server CPU (user+sys, /proc/PID/stat) per request, per MB echoed, or per connection (churn); syscalls = per request (per MB for bulk, per connection for churn), from a separate run under perf.',
    ],
  };
  const sys: Table = {
    title: 'io_uring bench: syscalls per request (per MB for bulk), perf stat on the server, separate run',
    header: ['shape', 'server', 'all', ...SYSCALL_NAMES],
    rows: results.filter((r) => r.syscalls !== null).map((r) => [r.shape, r.server, num(r.syscalls!.total, 3), ...SYSCALL_NAMES.map((n) => perUnit(r.syscalls!.byName[n]))]),
    notes: [
      info.syscalls ?? 'all = raw_syscalls:sys_enter; by name: syscalls:sys_enter_<name>. Counted from perf attaching to the loaded run (idle calls around it included: a few per run).',
    ],
  };
  const rows: Cell[][] = [];
  for (const shape of URING_SHAPES) {
    for (const [uring, epoll, where] of PEERS) {
      const u = find(results, uring, shape);
      if (u === undefined) continue;
      const e = find(results, epoll, shape);
      const sysRatio = u.syscalls && e?.syscalls ? ratioCell(u.syscalls.total / e.syscalls.total) : '-';
      rows.push([
        shape,
        `io_uring, ${where}`,
        spreadCell(cpuRatio(results, uring, epoll, shape)),
        spreadCell(cpuRatio(results, uring, 'C epoll', shape)),
        spreadCell(cpuRatio(results, uring, 'C io_uring', shape)),
        spreadCell(pairedRatio(u.rate, e?.rate)),
        sysRatio,
      ]);
    }
    const c = find(results, 'C io_uring', shape);
    if (c) rows.push([shape, 'C io_uring', '-', spreadCell(cpuRatio(results, 'C io_uring', 'C epoll', shape)), '-', spreadCell(pairedRatio(c.rate, find(results, 'C epoll', shape)?.rate)), '-']);
  }
  const ratios: Table = {
    title: 'io_uring bench: ratios (run by run: median (range))',
    header: ['shape', 'server', 'CPU vs epoll peer', 'CPU vs C epoll', 'CPU vs C io_uring', 'rate vs epoll peer', 'syscalls vs epoll peer'],
    rows,
    notes: [
      'epoll peer: the same m-socket server on the epoll backend (Reactor for Reactor, own loop for own loop); the C io_uring row: against C epoll (its rate column too).',
      'CPU = server CPU per request (per MB for bulk): lower is better; rate: higher is better.',
    ],
  };
  return [main, sys, ratios];
}

// ---------------------------------------------------------------------------------------------
// Running it

interface Raw {
  rate: number;
  p50us?: number;
  p99us?: number;
  late?: number;
  serverCpu: number;
  serverCpuPct: number;
  clientCpuPct: number;
}

/** What perf can count here: the events to ask for, or why not. */
export interface PerfProbe {
  perf: string | null;
  events: string[];
  note: string | null;
}

function probePerf(): PerfProbe {
  const which = spawnSync('sh', ['-c', 'command -v perf'], { encoding: 'utf8' });
  const perf = which.status === 0 ? which.stdout.trim() : null;
  if (perf === null || perf === '') return { perf: null, events: [], note: 'perf not found: the syscall columns are unavailable' };
  const full = [RAW_EVENT, ...SYSCALL_NAMES.map((n) => `syscalls:sys_enter_${n}`)];
  for (const events of [full, [RAW_EVENT]]) {
    const r = spawnSync(perf, ['stat', '-x', ',', '-e', events.join(','), '--', 'true'], { encoding: 'utf8', timeout: 10_000 });
    const counts = r.status === 0 ? parsePerfStat(r.stderr ?? '') : null;
    if (counts?.has(RAW_EVENT)) {
      return { perf, events, note: events.length === 1 ? 'perf counts raw_syscalls:sys_enter but not the syscalls:sys_enter_<name> tracepoints here: totals only' : null };
    }
  }
  return { perf: null, events: [], note: `perf cannot count ${RAW_EVENT} here (permissions or tracefs): the syscall columns are unavailable` };
}

/** Runs `client` while perf counts the server's syscalls; the counts, or null (never throws for perf). */
async function countSyscalls(probe: PerfProbe, pid: number, client: () => Promise<string>, log: (s: string) => void): Promise<{ out: string; counts: Map<string, number> | null }> {
  if (probe.perf === null) return { out: await client(), counts: null };
  const dir = mkdtempSync(join(tmpdir(), 'msocket-perf-'));
  const file = join(dir, 'stat.txt');
  const perf = new Child(probe.perf, ['stat', '-x', ',', '-o', file, '-e', probe.events.join(','), '-p', String(pid)], {});
  try {
    // perf has no "attached" signal: give it time to open its counters before the load starts.
    await new Promise((r) => setTimeout(r, 500));
    if (perf.exited) {
      log(`perf exited early (${perf.stderr.trim().slice(0, 200)}): syscalls not counted`);
      return { out: await client(), counts: null };
    }
    const out = await client();
    const gone = new Promise<void>((resolve) => (perf.exited ? resolve() : perf.process.once('exit', () => resolve())));
    perf.process.kill('SIGINT');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      // no file: not counted
    }
    const counts = parsePerfStat(text);
    if (counts === null) log(`perf counted nothing (${perf.stderr.trim().slice(0, 200)})`);
    return { out, counts };
  } finally {
    await perf.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface UringRunOptions {
  quick: boolean;
  built: Built;
  log: (s: string) => void;
  progress: Progress;
  reps?: number;
  secs?: number;
}

/**
 * What bench/c/eventfd_wake.c prints: how late the kernel signals a ring's registered eventfd
 * (the fd an io_uring Reactor sleeps on), with DEFER_TASKRUN and on a plain ring; null without it.
 */
export function eventfdWake(built: Built): string | null {
  const tool = built.optional.eventfd_wake;
  if (tool === undefined) return null;
  const r = spawnSync(tool, ['40'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 || r.status === 3 ? r.stdout.trim() : `eventfd_wake failed: ${(r.stderr || r.error?.message || '').trim()}`;
}

export async function runIoUring(options: UringRunOptions): Promise<{ results: UringResult[]; tables: Table[]; checks: TargetCheck[]; skipped: string | null }> {
  const { built, log, progress } = options;
  const plan = uringPlan(options);
  const tools = built.tools;
  if (tools === null) {
    progress.passOver(plan.steps);
    return { results: [], tables: [], checks: [], skipped: built.reason };
  }
  const cUring = built.optional.uring_echo ?? null;
  const paced = built.optional.paced ?? null;
  for (const [name, why] of Object.entries(built.optionalReasons)) log(`io_uring bench: ${name} not built (${why.split('\n')[0]})`);
  const probe = probePerf();
  if (probe.note) log(`io_uring bench: ${probe.note}`);
  if (probe.perf === null) progress.passOver(plan.syscallSteps);
  const shapes = plan.shapes.filter((s) => s !== 'paced 50k req/s, 50 conns' || paced !== null);
  if (shapes.length < plan.shapes.length) progress.passOver((plan.reps + (probe.perf === null ? 0 : 1)) * plan.servers.length);

  /** One client run against a server: the client's output and the units it made (requests or MB). */
  const load = (server: Server, shape: UringShape, secs: number, warm: number, mib: number): Promise<string> => {
    const port = String(server.port);
    switch (shape) {
      case 'bulk echo':
        return run(tools.bulk, [port, String(mib), '65536', '120'], { core: CLIENT_CORE, timeoutMs: 150_000 });
      case 'connection churn':
        return run(tools.connect_loop, [port, String(secs), '8'], { core: CLIENT_CORE, timeoutMs: secs * 1000 + 30_000 });
      case 'paced 50k req/s, 50 conns':
        return run(paced!, [port, '50', String(PACED_RATE), String(secs), String(warm), '64'], { core: CLIENT_CORE, timeoutMs: (secs + warm) * 1000 + 20_000 });
      default:
        return run(tools.pingpong, [port, shape === 'ping-pong 1 conn' ? '1' : '50', String(secs), String(warm), '64'], { core: CLIENT_CORE, timeoutMs: (secs + warm) * 1000 + 20_000 });
    }
  };
  const unitsOf = (shape: UringShape, kv: Record<string, number>) =>
    shape === 'bulk echo' ? kv.bytes / 1e6 : shape === 'connection churn' ? kv.conns : kv.total_reqs;

  const raws = new Map<string, Raw[]>();
  const sysc = new Map<string, SyscallCount | null>();
  const skipped = new Set<ServerKind>();
  const key = (kind: ServerKind, shape: UringShape) => `${kind}|${shape}`;
  for (let rep = 0; rep < plan.reps; rep++) {
    for (const kind of serverOrder(plan.servers, rep)) {
      if (skipped.has(kind)) continue;
      let why = kind.startsWith('C io_uring') && cUring === null ? 'uring_echo.c did not compile' : 'unavailable';
      const server = await startServer(kind, tools.echo_server, { lifetimeS: 900, cUring, onUnsupported: (w) => (why = w) });
      if (server === null) {
        skipped.add(kind);
        progress.passOver(shapes.length * (plan.reps - rep) + (probe.perf !== null && rep === 0 ? shapes.length : 0));
        log(`io_uring bench: ${kind} not available (${why}), skipped`);
        continue;
      }
      try {
        for (const shape of shapes) {
          progress.step(`io_uring ${shape} against ${kind}, run ${rep + 1}/${plan.reps}`);
          const k = key(kind, shape);
          if (!raws.has(k)) raws.set(k, []);
          let raw: Raw;
          try {
            const cpu0 = server.child.cpuSeconds();
            const t0 = performance.now();
            const out = await load(server, shape, plan.secs, plan.warm, plan.bulkMiB);
            const wall = (performance.now() - t0) / 1000;
            const cpu = server.child.cpuSeconds() - cpu0;
            const kv = parseKV(out);
            raw =
              shape === 'bulk echo' || shape === 'connection churn'
                ? { rate: shape === 'bulk echo' ? kv.MBps : kv.cps, serverCpu: (cpu * 1e6) / unitsOf(shape, kv), serverCpuPct: (100 * cpu) / kv.secs, clientCpuPct: kv.client_cpu_pct }
                : {
                    rate: kv.rps,
                    p50us: kv.p50_us,
                    p99us: kv.p99_us,
                    late: kv.late,
                    serverCpu: (cpu * 1e6) / unitsOf(shape, kv),
                    serverCpuPct: (100 * cpu) / Math.max(wall, plan.secs + plan.warm),
                    clientCpuPct: kv.client_cpu_pct,
                  };
          } catch (err) {
            // One failed run is a gap in the figures (NaN keeps the runs of every server aligned by repetition).
            log(`io_uring bench: ${shape} against ${kind}, run ${rep + 1} failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
            raw = { rate: NaN, serverCpu: NaN, serverCpuPct: NaN, clientCpuPct: NaN };
          }
          raws.get(k)!.push(raw);
          await new Promise((r) => setTimeout(r, 200));
        }
        // The syscall runs: once per server and shape, in the first repetition, after the timed ones.
        if (rep === 0 && probe.perf !== null) {
          for (const shape of shapes) {
            progress.step(`io_uring syscalls (perf) ${shape} against ${kind}`);
            try {
              const { out, counts } = await countSyscalls(probe, server.child.pid, () => load(server, shape, plan.syscallSecs, 0, plan.syscallMiB), log);
              sysc.set(key(kind, shape), syscallsPerUnit(counts, unitsOf(shape, parseKV(out))));
            } catch (err) {
              log(`io_uring bench: syscall run ${shape} against ${kind} failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
              sysc.set(key(kind, shape), null);
            }
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      } finally {
        await server.child.kill();
      }
    }
  }
  const results: UringResult[] = [];
  for (const shape of shapes) {
    for (const kind of plan.servers) {
      const r = raws.get(key(kind, shape));
      if (r === undefined) continue;
      const pick = (f: (x: Raw) => number | undefined) => summarize(r.map((x) => f(x) ?? NaN));
      const pingpong = shape !== 'bulk echo' && shape !== 'connection churn';
      results.push({
        server: kind,
        shape,
        rate: pick((x) => x.rate),
        p50us: pingpong ? pick((x) => x.p50us) : undefined,
        p99us: pingpong ? pick((x) => x.p99us) : undefined,
        late: shape === 'paced 50k req/s, 50 conns' ? pick((x) => x.late) : undefined,
        serverCpu: pick((x) => x.serverCpu),
        serverCpuPct: pick((x) => x.serverCpuPct),
        clientCpuPct: pick((x) => x.clientCpuPct),
        syscalls: sysc.get(key(kind, shape)) ?? null,
      });
    }
  }
  const sysNote = probe.perf === null ? `syscalls not counted: ${probe.note}` : probe.note;
  const tables = uringTables(results, { reps: plan.reps, bulkMiB: plan.bulkMiB, pinned: machine.taskset, syscalls: sysNote });
  return { results, tables, checks: uringChecks(results), skipped: null };
}

/** The target checks as a table. */
export function checksTable(checks: readonly TargetCheck[]): Table {
  return {
    title: 'io_uring targets (issue 15), ratios of server CPU in this run',
    header: ['target', 'measured: median (range)', 'status'],
    rows: checks.map((c) => [c.target, c.value, c.met === null ? 'n/a' : c.met ? 'met' : 'MISSED']),
  };
}

function parseArgs(argv: string[]) {
  const o = { quick: false, reps: undefined as number | undefined, secs: undefined as number | undefined, json: null as string | null, shapes: [] as UringShape[] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0 || v > 1000) throw new Error(`${a} needs a positive number`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--reps') o.reps = Math.round(value());
    else if (a === '--seconds') o.secs = Math.min(60, value());
    else if (a === '--json') o.json = argv[++i] ?? null;
    else if (a === '--shape') {
      const shape = argv[++i] as UringShape;
      if (!URING_SHAPES.includes(shape)) throw new Error(`--shape takes one of ${URING_SHAPES.map((n) => `'${n}'`).join(', ')}`);
      o.shapes.push(shape);
    }
    else if (a === '--help' || a === '-h') {
      console.log(`usage: node --import tsx bench/io-uring.ts [--quick] [--reps N] [--seconds S] [--shape NAME]... [--json FILE]\n  shapes: ${URING_SHAPES.join(', ')}`);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

async function main(): Promise<void> {
  installCleanup();
  const opts = parseArgs(process.argv.slice(2));
  const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);
  const built = buildC();
  if (built.reason) log(`note: ${built.reason}`);
  const started = Date.now();
  const plan = uringPlan(opts);
  const progress = new Progress(plan.steps);
  const loadavg = readFileSync('/proc/loadavg', 'utf8').trim();
  const r = await runIoUring({ ...opts, built, log, progress });
  if (r.skipped) log(`io_uring bench skipped: ${r.skipped}`);
  console.log(`m-socket io_uring bench (${opts.quick ? 'quick' : 'full'}) ${new Date().toISOString()}  node ${process.version}, ${machine.cores} cores, load at start ${loadavg}\n`);
  // A Reactor sleeps on the ring's eventfd: a kernel that signals it late makes every wake-up late.
  const wake = eventfdWake(built);
  if (wake !== null) console.log(`eventfd wake-up after work arrives (bench/c/eventfd_wake.c):\n\n${wake.split('\n').map((l) => `    ${l}`).join('\n')}\n`);
  for (const t of [...r.tables, checksTable(r.checks)]) console.log(render(t, true) + '\n');
  console.log(`elapsed ${(Date.now() - started) / 1000} s`);
  if (opts.json !== null) {
    writeFileSync(opts.json, JSON.stringify({ mode: opts.quick ? 'quick' : 'full', loadavgAtStart: loadavg, results: r.results, targets: r.checks }, null, 2) + '\n');
    log(`wrote ${opts.json}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
