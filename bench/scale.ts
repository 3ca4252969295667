/**
 * Scale: connection churn (accept rate) and memory per connection, m-socket vs node:net (and the
 * C server as a reference).
 *
 * - Accept rate: the C `connect_loop` client keeps 8 connections in flight; each connects, echoes
 *   1 byte (so the server really accepted and served it) and closes. Connections per second.
 * - Memory: a fresh server process; RSS (VmRSS) before, then the C `hold` client opens N
 *   connections and echoes once on each (idle: 1 byte; active: 16 KiB), then holds them; RSS
 *   after. KiB per connection = RSS delta / N. RLIMIT_NOFILE is raised for both processes with
 *   prlimit (or `ulimit -n` in a sh wrapper), within the hard limit.
 */
import { Child, machine, parseKV, run } from './lib/proc.ts';
import { startServer, CLIENT_CORE, type ServerKind } from './lib/servers.ts';
import type { Built } from './lib/build.ts';
import { summarize, ratio, type Summary } from './lib/stats.ts';
import { num, ratioCell, type Table } from './lib/table.ts';
import type { TargetCheck } from './copy-costs.ts';
import type { Progress } from './lib/progress.ts';

const KINDS: ServerKind[] = ['m-socket', 'node:net', 'C epoll'];

export interface MemoryResult {
  server: ServerKind;
  mode: 'idle' | 'active';
  connections: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  kibPerConnection: number;
  /** JS heap growth per connection after a full GC (node servers only). */
  heapKiBPerConnection: number;
}

export interface AcceptResult {
  server: ServerKind;
  cps: Summary;
  serverCpuUsPerConn: Summary;
  clientCpuPct: Summary;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function memory(kind: ServerKind, built: Built, n: number, msg: number, mode: 'idle' | 'active'): Promise<MemoryResult | null> {
  const tools = built.tools!;
  const nofile = n + 1024;
  const isNode = kind !== 'C epoll';
  const server = await startServer(kind, tools.echo_server, { lifetimeS: 300, nofile, nodeFlags: ['--expose-gc'] });
  if (server === null) return null;
  let client: Child | null = null;
  // Node servers: full GC first (SIGUSR2 handler, see servers/*.ts), so the RSS and heap figures
  // are not just whatever garbage happened to be around.
  const settle = async (): Promise<number> => {
    if (!isNode) {
      await sleep(300);
      return NaN;
    }
    server.child.process.kill('SIGUSR2');
    const m = await server.child.line(/^MEM /, 10_000);
    await sleep(300);
    return parseKV(m.input).heapUsed / 1024;
  };
  try {
    await sleep(300);
    const heap0 = await settle();
    const before = server.child.rssKiB();
    client = new Child(tools.hold, [String(server.port), String(n), String(msg), '120'], { core: CLIENT_CORE, nofile });
    await client.line(/^READY/, 120_000);
    const heap1 = await settle();
    const after = server.child.rssKiB();
    return {
      server: kind,
      mode,
      connections: n,
      rssBeforeKiB: before,
      rssAfterKiB: after,
      kibPerConnection: (after - before) / n,
      heapKiBPerConnection: (heap1 - heap0) / n,
    };
  } finally {
    await client?.kill();
    await server.child.kill();
  }
}

/** Counts of a scale section; steps = memory readings + accept-rate runs, for the progress lines. */
export function scalePlan(quick: boolean) {
  const limit = machine.nofileHard;
  const idleN = Math.min(quick ? 2000 : 10_000, Number.isFinite(limit) ? limit - 1100 : 10_000);
  const activeN = Math.min(quick ? 1000 : 3000, idleN);
  const reps = quick ? 1 : 3;
  const secs = quick ? 1.5 : 3;
  return { idleN, activeN, reps, secs, steps: 2 * KINDS.length + reps * KINDS.length };
}

export async function runScale(options: { quick: boolean; built: Built; log: (s: string) => void; progress: Progress }) {
  const { quick, built, progress } = options;
  const { idleN, activeN, reps, secs, steps } = scalePlan(quick);
  if (built.tools === null) {
    progress.passOver(steps);
    return { memory: [], accept: [], tables: [] as Table[], checks: [] as TargetCheck[], skipped: built.reason };
  }
  const tools = built.tools;
  const mem: MemoryResult[] = [];
  for (const [mode, n, msg] of [['idle', idleN, 1], ['active', activeN, 16384]] as const) {
    for (const kind of KINDS) {
      progress.step(`scale RSS with ${n} ${mode} connections on ${kind}`);
      const r = await memory(kind, built, n, msg, mode);
      if (r !== null) mem.push(r);
    }
  }
  const raws = new Map<ServerKind, { cps: number; cpu: number; client: number }[]>();
  const servers = [];
  try {
    for (const kind of KINDS) {
      const s = await startServer(kind, tools.echo_server, { lifetimeS: 600 });
      if (s !== null) servers.push(s);
      else progress.passOver(reps);
    }
    for (let rep = 0; rep < reps; rep++) {
      for (const s of servers) {
        progress.step(`scale accept rate on ${s.kind}, run ${rep + 1}/${reps}`);
        const cpu0 = s.child.cpuSeconds();
        const out = await run(tools.connect_loop, [String(s.port), String(secs), '8'], { core: CLIENT_CORE, timeoutMs: secs * 1000 + 30_000 });
        const cpu = s.child.cpuSeconds() - cpu0;
        const kv = parseKV(out);
        if (!raws.has(s.kind)) raws.set(s.kind, []);
        raws.get(s.kind)!.push({ cps: kv.cps, cpu: (cpu * 1e6) / Math.max(1, kv.conns), client: kv.client_cpu_pct });
        await sleep(300);
      }
    }
  } finally {
    for (const s of servers) await s.child.kill();
  }
  const accept: AcceptResult[] = [...raws].map(([server, r]) => ({
    server,
    cps: summarize(r.map((x) => x.cps)),
    serverCpuUsPerConn: summarize(r.map((x) => x.cpu)),
    clientCpuPct: summarize(r.map((x) => x.client)),
  }));
  return { memory: mem, accept, tables: scaleTables(mem, accept, reps), checks: scaleChecks(mem, accept), skipped: null as string | null };
}

function scaleTables(mem: MemoryResult[], accept: AcceptResult[], reps: number): Table[] {
  const a = (k: ServerKind) => accept.find((x) => x.server === k);
  const m = (k: ServerKind, mode: string) => mem.find((x) => x.server === k && x.mode === mode);
  return [
    {
      title: `Accept rate (connect, 1-byte echo, close; 8 in flight; ${reps} runs)`,
      header: ['server', 'connections/s', 'server CPU µs/conn', 'client CPU %'],
      rows: accept.map((x) => [x.server, x.cps, x.serverCpuUsPerConn, x.clientCpuPct]),
      notes: [
        `m-socket/node:net ${ratioCell(ratio(a('m-socket')?.cps, a('node:net')?.cps))}, m-socket/C ${ratioCell(ratio(a('m-socket')?.cps, a('C epoll')?.cps))} (connections/s)`,
      ],
    },
    {
      title: 'Memory per connection (server RSS delta / connections; one run each, fresh server)',
      header: ['mode', 'server', 'connections', 'RSS before KiB', 'RSS after KiB', 'RSS KiB / conn', 'JS heap KiB / conn'],
      rows: mem.map((x) => [x.mode, x.server, String(x.connections), String(x.rssBeforeKiB), String(x.rssAfterKiB), num(x.kibPerConnection), num(x.heapKiBPerConnection)]),
      notes: [
        'Node servers run with --expose-gc and are garbage-collected before each reading; kernel socket buffers are not in RSS.',
        `idle = 1-byte echo once then idle; active = 16 KiB echoed once on each. m-socket/node:net: idle ${ratioCell(ratio(m('m-socket', 'idle')?.kibPerConnection, m('node:net', 'idle')?.kibPerConnection))}, active ${ratioCell(ratio(m('m-socket', 'active')?.kibPerConnection, m('node:net', 'active')?.kibPerConnection))}`,
      ],
    },
  ];
}

function scaleChecks(mem: MemoryResult[], accept: AcceptResult[]): TargetCheck[] {
  void accept;
  const out: TargetCheck[] = [];
  for (const mode of ['idle', 'active'] as const) {
    const ms = mem.find((x) => x.server === 'm-socket' && x.mode === mode);
    const nn = mem.find((x) => x.server === 'node:net' && x.mode === mode);
    const r = ratio(ms?.kibPerConnection, nn?.kibPerConnection);
    out.push({
      target: `memory per ${mode} connection <= 0.5x node:net`,
      value: `${r.toFixed(2)}x (${num(ms?.kibPerConnection ?? NaN)} vs ${num(nn?.kibPerConnection ?? NaN)} KiB)`,
      met: Number.isFinite(r) ? r <= 0.5 : null,
    });
  }
  return out;
}
