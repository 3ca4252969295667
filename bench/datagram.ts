/**
 * Datagram benchmark: UDP echo servers under a C load generator on another core
 * (bench/c/udp_load.c, 32 connected sockets), for 64 B and 1200 B datagrams, in two modes:
 * - **closed** loop: 16 datagrams in flight per socket, each echo releases the next send. Per
 *   server: datagrams echoed per second, server CPU per datagram, datagrams lost (a flow silent
 *   for 200 ms);
 * - **blast** (open loop): each socket sends 16 datagrams per sendmmsg as fast as the client core
 *   can, without waiting for echoes, and reads the echoes as they come (recvmmsg). Per server:
 *   datagrams echoed per second (received back by the client), offered per second, loss in %
 *   (sent - echoed, counting only datagrams sent after the warm-up, after a 300 ms drain), where
 *   the kernel dropped them (the server's receive buffer, or the client's), and server CPU per
 *   datagram the server echoed.
 * Server CPU is utime + stime from /proc around the measured run. Servers run one at a time,
 * pinned to core 0, in alternating order over the runs; each server process is measured in every
 * mode asked (closed first); figures are medians with their spread.
 *
 * Servers: m-socket `DatagramBatch` (recvmmsg/sendmmsg), m-socket `receiveFrom`/`sendTo`,
 * node:dgram, and the C server in both shapes (recvmmsg/sendmmsg, recvfrom/sendto).
 * Targets (issue 14, closed loop): >= 2.5x node:dgram datagrams/s; <= 1.1x C recvmmsg CPU per
 * datagram. Ratios are against node:dgram and C recvmmsg of the same run.
 *
 *   node --import tsx bench/datagram.ts [--quick] [--runs N] [--seconds S] [--mode closed|blast|both] [--markdown]
 */
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { BENCH_DIR, BUILD_DIR } from './lib/build.ts';
import { Child, installCleanup, machine, parseKV, run } from './lib/proc.ts';
import { summarize, ratio, type Summary } from './lib/stats.ts';
import { ratioCell, render, type Cell, type Table } from './lib/table.ts';
import { Progress } from './lib/progress.ts';

export type DatagramServer = 'm-socket batch' | 'm-socket single' | 'node:dgram' | 'C recvmmsg' | 'C recvfrom';
export const DATAGRAM_SERVERS: DatagramServer[] = ['m-socket batch', 'm-socket single', 'node:dgram', 'C recvmmsg', 'C recvfrom'];
export const DATAGRAM_SIZES = [64, 1200];
const SIZES = DATAGRAM_SIZES;
/** Flows: connected client sockets, and datagrams in flight on each (512 in all: enough to fill batches). */
const SOCKETS = 32;
const WINDOW = 16;
/** Blast mode: datagrams per sendmmsg, on each socket in turn. */
const BLAST_BATCH = 16;
const SERVER_CORE = 0;
const CLIENT_CORE = 1;

/** Compiles udp_echo and udp_load into bench/.build (only when a source is newer). */
function buildUdpTools(): { echo: string; load: string } | null {
  if (!machine.cc) return null;
  mkdirSync(BUILD_DIR, { recursive: true });
  const out: Record<string, string> = {};
  for (const name of ['udp_echo', 'udp_load']) {
    const src = join(BENCH_DIR, 'c', `${name}.c`);
    const bin = join(BUILD_DIR, name);
    if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
      const r = spawnSync('cc', ['-O2', '-Wall', '-o', bin, src], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`cc failed on ${name}.c: ${r.stderr}`);
    }
    out[name] = bin;
  }
  return { echo: out.udp_echo, load: out.udp_load };
}

function command(kind: DatagramServer, echo: string, lifetimeS: number): [string, string[]] {
  const ts = (file: string, ...args: string[]): [string, string[]] => [process.execPath, ['--import', 'tsx', join(BENCH_DIR, 'servers', file), ...args]];
  switch (kind) {
    case 'm-socket batch':
      return ts('udp-echo.ts', 'batch', String(lifetimeS));
    case 'm-socket single':
      return ts('udp-echo.ts', 'single', String(lifetimeS));
    case 'node:dgram':
      return ts('dgram-echo.ts', String(lifetimeS));
    case 'C recvmmsg':
      return [echo, ['mmsg', String(lifetimeS)]];
    case 'C recvfrom':
      return [echo, ['basic', String(lifetimeS)]];
  }
}

/** The load modes: closed loop (a window in flight per flow) and blast (open loop). */
export type DatagramMode = 'closed' | 'blast';
export const DATAGRAM_MODES: readonly DatagramMode[] = ['closed', 'blast'];

/** A `--mode` value: `closed`, `blast` or `both` (both modes, closed first). */
export function parseModes(text: string): DatagramMode[] {
  if (text === 'both') return [...DATAGRAM_MODES];
  if (text === 'closed' || text === 'blast') return [text];
  throw new Error(`--mode must be closed, blast or both, not ${JSON.stringify(text)}`);
}

export interface DatagramResult {
  server: DatagramServer;
  size: number;
  perSecond: Summary;
  /** Server CPU microseconds per echoed datagram. */
  cpuUs: Summary;
  lost: number;
}

/** One blast run of one server, from the load tool's line and the server's CPU over the run. */
export interface BlastSample {
  /** Echoes received per second during the measured window. */
  perSecond: number;
  /** Datagrams sent per second during the measured window. */
  offered: number;
  /** (sent - echoed) / sent, in %, for the datagrams sent after the warm-up. */
  lossPct: number;
  /** Of those sent after the warm-up, dropped at the server's full receive buffer, in %. */
  serverDropPct: number;
  /** Dropped at the client's full receive buffers (echoed by the server, never read), in %. */
  clientDropPct: number;
  /** Server CPU µs per datagram it echoed (every echo of the run: received, or dropped at the client). */
  cpuUs: number;
}

/**
 * What one blast run says, from `udp_load ... blast` output (parsed `key=value` pairs) and the
 * server's CPU seconds over the whole run (warm-up and drain included, which is why the CPU is
 * divided by every datagram the server echoed in the run, not by the measured ones).
 */
export function blastSample(kv: Record<string, number>, serverCpuSeconds: number): BlastSample {
  for (const key of ['sent', 'echoes', 'per_s', 'offered_per_s', 'echoes_all', 'client_drops', 'server_drops']) {
    if (!Number.isFinite(kv[key])) throw new Error(`udp_load blast: no ${key} in its output`);
  }
  const pct = (n: number) => (kv.sent > 0 && n >= 0 ? (100 * n) / kv.sent : NaN);
  const echoedByServer = kv.echoes_all + Math.max(0, kv.client_drops);
  return {
    perSecond: kv.per_s,
    offered: kv.offered_per_s,
    lossPct: pct(kv.sent - kv.echoes),
    serverDropPct: pct(kv.server_drops),
    clientDropPct: pct(kv.client_drops),
    cpuUs: echoedByServer > 0 ? (serverCpuSeconds * 1e6) / echoedByServer : NaN,
  };
}

export interface BlastResult {
  server: DatagramServer;
  size: number;
  /** Datagrams echoed (received back by the client) per second. */
  perSecond: Summary;
  /** Datagrams the client sent per second. */
  offered: Summary;
  lossPct: Summary;
  serverDropPct: Summary;
  clientDropPct: Summary;
  cpuUs: Summary;
}

/** What `runDatagram` measured: null for a mode it was not asked to run. */
export interface DatagramRuns {
  closed: DatagramResult[] | null;
  blast: BlastResult[] | null;
}

export async function runDatagram(options: {
  quick: boolean;
  runs?: number | undefined;
  seconds?: number | undefined;
  modes?: readonly DatagramMode[] | undefined;
  log: (s: string) => void;
}): Promise<DatagramRuns | null> {
  const tools = buildUdpTools();
  if (tools === null) {
    options.log('datagram: no C compiler, skipped (the load generator is C)');
    return null;
  }
  const modes = options.modes ?? DATAGRAM_MODES;
  const runs = options.runs ?? (options.quick ? 2 : 5);
  const seconds = options.seconds ?? (options.quick ? 2 : 4);
  const closed = new Map<string, { perSecond: number[]; cpuUs: number[]; lost: number }>();
  const blast = new Map<string, BlastSample[]>();
  // The same progress lines as `npm run bench` (step, steps planned, time since the start).
  const progress = new Progress(runs * SIZES.length * DATAGRAM_SERVERS.length * modes.length, options.log);
  for (let r = 0; r < runs; r++) {
    for (const size of SIZES) {
      const order = r % 2 === 0 ? DATAGRAM_SERVERS : [...DATAGRAM_SERVERS].reverse();
      for (const kind of order) {
        // Each mode runs for `seconds` after the tool's own 0.5 s warm-up (and blast's 0.3 s drain).
        const [cmd, args] = command(kind, tools.echo, modes.length * (seconds + 1) + 30);
        const server = new Child(cmd, args, { core: SERVER_CORE });
        const key = `${kind}|${size}`;
        try {
          const port = Number((await server.line(/^PORT (\d+)/))[1]);
          // A short warm-up so the JIT has compiled the handlers before the measured runs.
          await run(tools.load, [String(port), '0.5', '4', '4', String(size)], { core: CLIENT_CORE, timeoutMs: 20_000 });
          for (const mode of modes) {
            progress.step(`datagram ${mode} ${kind} ${size} B, run ${r + 1}/${runs}`);
            const before = server.cpuSeconds();
            const window = mode === 'closed' ? WINDOW : BLAST_BATCH;
            const loadArgs = [String(port), String(seconds), String(SOCKETS), String(window), String(size), ...(mode === 'blast' ? ['blast'] : [])];
            const out = await run(tools.load, loadArgs, { core: CLIENT_CORE, timeoutMs: (seconds + 20) * 1000 });
            const cpu = server.cpuSeconds() - before;
            const kv = parseKV(out);
            if (mode === 'blast') {
              const samples = blast.get(key) ?? [];
              samples.push(blastSample(kv, cpu));
              blast.set(key, samples);
              continue;
            }
            const entry = closed.get(key) ?? { perSecond: [], cpuUs: [], lost: 0 };
            entry.perSecond.push(kv.per_s);
            // The load tool measures from its warm-up's end; the server's CPU is read around the
            // whole run, which includes the 0.5 s warm-up: count those echoes too.
            entry.cpuUs.push((cpu * 1e6) / (kv.echoes * (1 + 0.5 / kv.seconds)));
            entry.lost += kv.lost;
            closed.set(key, entry);
          }
        } finally {
          await server.kill();
        }
      }
    }
  }
  const each = <T>(make: (kind: DatagramServer, size: number) => T): T[] => SIZES.flatMap((size) => DATAGRAM_SERVERS.map((kind) => make(kind, size)));
  return {
    closed: modes.includes('closed')
      ? each((kind, size) => {
          const s = closed.get(`${kind}|${size}`)!;
          return { server: kind, size, perSecond: summarize(s.perSecond), cpuUs: summarize(s.cpuUs), lost: s.lost };
        })
      : null,
    blast: modes.includes('blast')
      ? each((kind, size) => {
          const s = blast.get(`${kind}|${size}`)!;
          const of = (pick: (x: BlastSample) => number) => summarize(s.map(pick));
          return {
            server: kind, size, perSecond: of((x) => x.perSecond), offered: of((x) => x.offered), lossPct: of((x) => x.lossPct),
            serverDropPct: of((x) => x.serverDropPct), clientDropPct: of((x) => x.clientDropPct), cpuUs: of((x) => x.cpuUs),
          };
        })
      : null,
  };
}

/** A percentage: the median, and the range over the runs when they differ ("12.3% (10.1-14.0)"). */
export function percentCell(s: Summary): string {
  if (!Number.isFinite(s.median)) return '-';
  const digits = (x: number) => (Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));
  const range = s.runs.length > 1 && s.max !== s.min ? ` (${digits(s.min)}-${digits(s.max)})` : '';
  return `${digits(s.median)}%${range}`;
}

/** The closed-loop table: datagrams/s and CPU per datagram, with the ratios the targets are stated in. */
export function closedTable(results: DatagramResult[]): Table {
  const rows: Cell[][] = results.map((x) => {
    const of = (kind: DatagramServer) => results.find((y) => y.server === kind && y.size === x.size);
    return [`${x.size} B`, x.server, x.perSecond, ratioCell(ratio(x.perSecond, of('node:dgram')?.perSecond)), x.cpuUs, ratioCell(ratio(x.cpuUs, of('C recvmmsg')?.cpuUs)), x.lost];
  });
  return {
    title: `Datagram echo, closed loop (${SOCKETS} flows x ${WINDOW} in flight, C load generator on core ${CLIENT_CORE})`,
    header: ['size', 'server', 'datagrams/s', 'vs node:dgram', 'server CPU µs/datagram', 'vs C recvmmsg', 'lost'],
    rows,
  };
}

/** The blast table: echoed and offered rates, loss and where the kernel dropped, CPU per datagram. */
export function blastTable(results: BlastResult[]): Table {
  const rows: Cell[][] = results.map((x) => {
    const of = (kind: DatagramServer) => results.find((y) => y.server === kind && y.size === x.size);
    return [
      `${x.size} B`, x.server, x.perSecond, ratioCell(ratio(x.perSecond, of('node:dgram')?.perSecond)), x.offered, percentCell(x.lossPct),
      `${percentCell(x.serverDropPct)} / ${percentCell(x.clientDropPct)}`, x.cpuUs, ratioCell(ratio(x.cpuUs, of('C recvmmsg')?.cpuUs)),
    ];
  });
  return {
    title: `Datagram echo, blast (open loop: ${SOCKETS} sockets, sendmmsg of ${BLAST_BATCH} each in turn, C load generator on core ${CLIENT_CORE})`,
    header: ['size', 'server', 'echoed/s', 'vs node:dgram', 'offered/s', 'loss', 'dropped at server / client', 'server CPU µs/datagram', 'vs C recvmmsg'],
    rows,
    notes: [
      'Loss counts the datagrams sent after the warm-up that did not come back by the end of a 300 ms drain; ' +
        'the drops are what /proc/net/udp counted at full receive buffers. CPU is per datagram the server echoed.',
    ],
  };
}

/** Every table of a run, closed loop first. */
export function datagramTables(runs: DatagramRuns): Table[] {
  return [...(runs.closed === null ? [] : [closedTable(runs.closed)]), ...(runs.blast === null ? [] : [blastTable(runs.blast)])];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  installCleanup();
  const argv = process.argv.slice(2);
  const at = (flag: string) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined);
  const number = (flag: string) => {
    const text = at(flag);
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!(n > 0)) throw new Error(`${flag} needs a positive number, not ${JSON.stringify(text)}`);
    return n;
  };
  const modes = parseModes(at('--mode') ?? 'both');
  const results = await runDatagram({ quick: argv.includes('--quick'), runs: number('--runs'), seconds: number('--seconds'), modes, log: (s) => process.stderr.write(`[bench] ${s}\n`) });
  if (results !== null) for (const table of datagramTables(results)) console.log(render(table, argv.includes('--markdown')) + '\n');
  process.exit(0);
}
