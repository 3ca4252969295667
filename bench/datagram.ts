/**
 * Datagram benchmark: UDP echo servers under a closed-loop C load generator on another core
 * (bench/c/udp_load.c: 32 connected sockets, 16 datagrams in flight each), for 64 B and 1200 B
 * datagrams. Per server: datagrams echoed per second, and server CPU per datagram (utime + stime
 * from /proc over the measured window). Servers run one at a time, pinned to core 0, in
 * alternating order over the runs; figures are medians with their spread.
 *
 * Servers: m-socket `DatagramBatch` (recvmmsg/sendmmsg), m-socket `receiveFrom`/`sendTo`,
 * node:dgram, and the C server in both shapes (recvmmsg/sendmmsg, recvfrom/sendto).
 * Targets (issue 14): >= 2.5x node:dgram datagrams/s; <= 1.1x C recvmmsg CPU per datagram.
 *
 *   node --import tsx bench/datagram.ts [--quick] [--runs N] [--seconds S]
 */
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { BENCH_DIR, BUILD_DIR } from './lib/build.ts';
import { Child, installCleanup, machine, parseKV, run } from './lib/proc.ts';
import { summarize, ratio, type Summary } from './lib/stats.ts';
import { Progress } from './lib/progress.ts';

export type DatagramServer = 'm-socket batch' | 'm-socket single' | 'node:dgram' | 'C recvmmsg' | 'C recvfrom';
export const DATAGRAM_SERVERS: DatagramServer[] = ['m-socket batch', 'm-socket single', 'node:dgram', 'C recvmmsg', 'C recvfrom'];
const SIZES = [64, 1200];
/** Flows: connected client sockets, and datagrams in flight on each (512 in all: enough to fill batches). */
const SOCKETS = 32;
const WINDOW = 16;
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

export interface DatagramResult {
  server: DatagramServer;
  size: number;
  perSecond: Summary;
  /** Server CPU microseconds per echoed datagram. */
  cpuUs: Summary;
  lost: number;
}

export async function runDatagram(options: { quick: boolean; runs?: number; seconds?: number; log: (s: string) => void }): Promise<DatagramResult[] | null> {
  const tools = buildUdpTools();
  if (tools === null) {
    options.log('datagram: no C compiler, skipped (the load generator is C)');
    return null;
  }
  const runs = options.runs ?? (options.quick ? 2 : 5);
  const seconds = options.seconds ?? (options.quick ? 2 : 4);
  const samples = new Map<string, { perSecond: number[]; cpuUs: number[]; lost: number }>();
  // The same progress lines as `npm run bench` (step, steps planned, time since the start).
  const progress = new Progress(runs * SIZES.length * DATAGRAM_SERVERS.length, options.log);
  for (let r = 0; r < runs; r++) {
    for (const size of SIZES) {
      const order = r % 2 === 0 ? DATAGRAM_SERVERS : [...DATAGRAM_SERVERS].reverse();
      for (const kind of order) {
        progress.step(`datagram ${kind} ${size} B, run ${r + 1}/${runs}`);
        const [cmd, args] = command(kind, tools.echo, seconds + 30);
        const server = new Child(cmd, args, { core: SERVER_CORE });
        try {
          const port = Number((await server.line(/^PORT (\d+)/))[1]);
          // A short warm-up so the JIT has compiled the handlers before the measured run.
          await run(tools.load, [String(port), '0.5', '4', '4', String(size)], { core: CLIENT_CORE, timeoutMs: 20_000 });
          const before = server.cpuSeconds();
          const out = await run(tools.load, [String(port), String(seconds), String(SOCKETS), String(WINDOW), String(size)], { core: CLIENT_CORE, timeoutMs: (seconds + 20) * 1000 });
          const cpu = server.cpuSeconds() - before;
          const kv = parseKV(out);
          const key = `${kind}|${size}`;
          const entry = samples.get(key) ?? { perSecond: [], cpuUs: [], lost: 0 };
          entry.perSecond.push(kv.per_s);
          // The load tool measures from its warm-up's end; the server's CPU is read around the
          // whole run, which includes the 0.5 s warm-up: count those echoes too.
          entry.cpuUs.push((cpu * 1e6) / (kv.echoes * (1 + 0.5 / kv.seconds)));
          entry.lost += kv.lost;
          samples.set(key, entry);
        } finally {
          await server.kill();
        }
      }
    }
  }
  const results: DatagramResult[] = [];
  for (const size of SIZES) {
    for (const kind of DATAGRAM_SERVERS) {
      const s = samples.get(`${kind}|${size}`)!;
      results.push({ server: kind, size, perSecond: summarize(s.perSecond), cpuUs: summarize(s.cpuUs), lost: s.lost });
    }
  }
  return results;
}

/** The table: datagrams/s and CPU per datagram, with the ratios the targets are stated in. */
export function datagramTable(results: DatagramResult[]): string {
  const lines = ['| size | server | datagrams/s | vs node:dgram | server CPU per datagram | vs C recvmmsg | lost |', '|---|---|---|---|---|---|---|'];
  for (const size of SIZES) {
    const of = (kind: DatagramServer) => results.find((x) => x.server === kind && x.size === size)!;
    for (const kind of DATAGRAM_SERVERS) {
      const x = of(kind);
      const spread = (s: Summary) => `±${(s.spread * 50).toFixed(0)}%`;
      lines.push(
        `| ${size} B | ${kind} | ${x.perSecond.median.toFixed(0)} ${spread(x.perSecond)} | ${ratio(x.perSecond, of('node:dgram').perSecond).toFixed(2)}x | ` +
          `${x.cpuUs.median.toFixed(2)} µs ${spread(x.cpuUs)} | ${ratio(x.cpuUs, of('C recvmmsg').cpuUs).toFixed(2)}x | ${x.lost} |`,
      );
    }
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  installCleanup();
  const quick = process.argv.includes('--quick');
  const at = (flag: string) => (process.argv.includes(flag) ? Number(process.argv[process.argv.indexOf(flag) + 1]) : undefined);
  const results = await runDatagram({ quick, runs: at('--runs'), seconds: at('--seconds'), log: (s) => process.stderr.write(`[bench] ${s}\n`) });
  if (results !== null) console.log(datagramTable(results));
  process.exit(0);
}
