/**
 * Throughput: the same C load generator (pinned to core 1) against each echo server (its own
 * process, pinned to core 0): 64 B ping-pong over 1 and 50 connections, and a bulk echo with
 * 64 KiB writes. Server CPU comes from /proc/PID/stat (utime + stime) before and after each
 * client run, divided by every request the client made (warm-up included, as the CPU is).
 */
import { run, parseKV, machine } from './lib/proc.ts';
import { startServer, CLIENT_CORE, type ServerKind } from './lib/servers.ts';
import type { Built } from './lib/build.ts';
import { summarize, ratio, type Summary } from './lib/stats.ts';
import { ratioCell, type Table } from './lib/table.ts';
import type { TargetCheck } from './copy-costs.ts';
import type { Progress } from './lib/progress.ts';

export type Shape = 'ping-pong 1 conn' | 'ping-pong 50 conns' | 'bulk echo';

export interface ShapeResult {
  server: ServerKind;
  shape: Shape;
  /** req/s (ping-pong) or MB/s (bulk). */
  rate: Summary;
  p50us?: Summary;
  p99us?: Summary;
  /** Server CPU: µs per request (ping-pong) or µs per MB echoed (bulk). */
  serverCpu: Summary;
  /** Server CPU use over the run, % of one core. */
  serverCpuPct: Summary;
  clientCpuPct: Summary;
}

interface Raw {
  rate: number;
  p50us?: number;
  p99us?: number;
  serverCpu: number;
  serverCpuPct: number;
  clientCpuPct: number;
}

const MAIN: ServerKind[] = ['m-socket', 'm-socket io_uring', 'node:net', 'C epoll'];

/** What a run measures: the same plan drives the loop and the progress lines' step count. */
export function throughputPlan(quick: boolean) {
  const reps = quick ? 2 : 3;
  const secs = quick ? 1.5 : 5;
  const warm = quick ? 0.5 : 1;
  const bulkMiB = quick ? 128 : 1024;
  const busy: ServerKind[] = quick ? ['m-socket busy', 'm-socket lib busy'] : ['m-socket busy', 'm-socket lib busy', 'C busy'];
  const experiments: ServerKind[] = quick ? [] : ['m-socket rounds=1'];
  const kinds: ServerKind[] = [...MAIN, ...experiments, ...busy];
  const plan: [Shape, ServerKind[]][] = [
    ['ping-pong 1 conn', kinds],
    ['ping-pong 50 conns', [...MAIN, ...experiments]],
    ['bulk echo', quick ? MAIN : [...MAIN, 'm-socket busy']],
  ];
  /** Client runs against one server kind in one repetition. */
  const shapesOf = (kind: ServerKind) => plan.filter(([, list]) => list.includes(kind)).length;
  const steps = reps * kinds.reduce((n, kind) => n + shapesOf(kind), 0);
  return { reps, secs, warm, bulkMiB, kinds, plan, shapesOf, steps };
}

export async function runThroughput(options: { quick: boolean; built: Built; log: (s: string) => void; progress: Progress }) {
  const { quick, built, log, progress } = options;
  const { reps, secs, warm, bulkMiB, kinds, plan, shapesOf, steps } = throughputPlan(quick);
  const tools = built.tools;
  if (tools === null) {
    progress.passOver(steps);
    return { results: [] as ShapeResult[], tables: [] as Table[], checks: [] as TargetCheck[], skipped: built.reason };
  }
  const raws = new Map<string, Raw[]>();
  // One server alive at a time: a busy-poll server spins even while idle (the C one never
  // sleeps), and every server is pinned to the same core, so a server left running would take
  // that core from the one being measured.
  const skipped = new Set<ServerKind>();
  for (let rep = 0; rep < reps; rep++) {
    for (const kind of kinds) {
      if (skipped.has(kind)) continue;
      let why = 'no cc';
      const server = await startServer(kind, tools.echo_server, { lifetimeS: 900, onUnsupported: (w) => (why = w) });
      if (server === null) {
        skipped.add(kind);
        // This repetition and every later one would have measured it.
        progress.passOver(shapesOf(kind) * (reps - rep));
        log(`throughput: ${kind} not available (${kind === 'm-socket lib busy' ? 'this Reactor has no busyPollMs option' : why}), skipped`);
        continue;
      }
      try {
        for (const [shape, list] of plan) {
          if (!list.includes(kind)) continue;
          progress.step(`throughput ${shape} against ${kind}, run ${rep + 1}/${reps}`);
          const cpu0 = server.child.cpuSeconds();
          const t0 = performance.now();
          let out: string;
          if (shape === 'bulk echo') {
            out = await run(tools.bulk, [String(server.port), String(bulkMiB), '65536', '120'], { core: CLIENT_CORE, timeoutMs: 150_000 });
          } else {
            const conns = shape === 'ping-pong 1 conn' ? '1' : '50';
            out = await run(tools.pingpong, [String(server.port), conns, String(secs), String(warm), '64'], {
              core: CLIENT_CORE,
              timeoutMs: (secs + warm) * 1000 + 20_000,
            });
          }
          const wall = (performance.now() - t0) / 1000;
          const cpu = server.child.cpuSeconds() - cpu0;
          const kv = parseKV(out);
          const raw: Raw =
            shape === 'bulk echo'
              ? { rate: kv.MBps, serverCpu: (cpu * 1e6) / (kv.bytes / 1e6), serverCpuPct: (100 * cpu) / kv.secs, clientCpuPct: kv.client_cpu_pct }
              : {
                  rate: kv.rps,
                  p50us: kv.p50_us,
                  p99us: kv.p99_us,
                  serverCpu: (cpu * 1e6) / kv.total_reqs,
                  serverCpuPct: (100 * cpu) / Math.max(wall, secs + warm),
                  clientCpuPct: kv.client_cpu_pct,
                };
          const key = `${kind}|${shape}`;
          if (!raws.has(key)) raws.set(key, []);
          raws.get(key)!.push(raw);
          // Let a busy server stop spinning and TCP settle between runs.
          await new Promise((r) => setTimeout(r, 200));
        }
      } finally {
        await server.child.kill();
      }
    }
  }
  const results: ShapeResult[] = [];
  for (const [shape, list] of plan) {
    for (const kind of list) {
      const r = raws.get(`${kind}|${shape}`);
      if (r === undefined) continue;
      const pick = (f: (x: Raw) => number | undefined) => summarize(r.map((x) => f(x) ?? NaN));
      results.push({
        server: kind,
        shape,
        rate: pick((x) => x.rate),
        p50us: shape === 'bulk echo' ? undefined : pick((x) => x.p50us),
        p99us: shape === 'bulk echo' ? undefined : pick((x) => x.p99us),
        serverCpu: pick((x) => x.serverCpu),
        serverCpuPct: pick((x) => x.serverCpuPct),
        clientCpuPct: pick((x) => x.clientCpuPct),
      });
    }
  }
  return { results, tables: tables(results, quick, bulkMiB, reps), checks: checks(results), skipped: null as string | null };
}

function get(results: ShapeResult[], server: ServerKind, shape: Shape) {
  return results.find((r) => r.server === server && r.shape === shape);
}

function tables(results: ShapeResult[], quick: boolean, bulkMiB: number, reps: number): Table[] {
  const pinned = machine.taskset ? 'server pinned to core 0, client to core 1 (taskset)' : 'no taskset / fewer than 2 cores: processes not pinned';
  const main: Table = {
    title: `Throughput (C load generator; ${reps} runs each; ${pinned})`,
    header: ['shape', 'server', 'rate', 'p50 µs', 'p99 µs', 'server CPU', 'server CPU %', 'client CPU %'],
    rows: results.map((r) => [
      r.shape,
      r.server,
      r.rate,
      r.p50us,
      r.p99us,
      r.serverCpu,
      r.serverCpuPct,
      r.clientCpuPct,
    ]),
    notes: [
      `rate = req/s (ping-pong, 64 B) or MB/s (bulk echo of ${bulkMiB} MiB, 64 KiB writes; MB = 1e6 B);`,
      'server CPU = µs of server CPU (user+sys, /proc/PID/stat) per request, or per MB echoed; "m-socket busy" / "C busy" spin on wait(0) (bench-only loop, see servers/msocket-echo.ts).',
    ],
  };
  const shapes: Shape[] = ['ping-pong 1 conn', 'ping-pong 50 conns', 'bulk echo'];
  const rows = [];
  for (const shape of shapes) {
    const m = get(results, 'm-socket', shape);
    const n = get(results, 'node:net', shape);
    const c = get(results, 'C epoll', shape);
    if (!m) continue;
    rows.push([
      shape,
      ratioCell(ratio(m.rate, n?.rate)),
      ratioCell(ratio(m.rate, c?.rate)),
      ratioCell(ratio(m.serverCpu, n?.serverCpu)),
      ratioCell(ratio(m.serverCpu, c?.serverCpu)),
      ratioCell(ratio(n?.serverCpu, c?.serverCpu)),
    ]);
  }
  const n1 = get(results, 'node:net', 'ping-pong 1 conn');
  const cBusy = get(results, 'C busy', 'ping-pong 1 conn');
  for (const shape of shapes) {
    const m = get(results, 'm-socket', shape);
    const u = get(results, 'm-socket io_uring', shape);
    const c = get(results, 'C epoll', shape);
    if (u) rows.push([`io_uring backend ${shape}`, ratioCell(ratio(u.rate, m?.rate)), ratioCell(ratio(u.rate, c?.rate)), ratioCell(ratio(u.serverCpu, m?.serverCpu)), ratioCell(ratio(u.serverCpu, c?.serverCpu)), '-']);
  }
  for (const kind of ['m-socket busy', 'm-socket lib busy'] as const) {
    const b = get(results, kind, 'ping-pong 1 conn');
    if (b) rows.push([`${kind} ping-pong 1 conn`, ratioCell(ratio(b.rate, n1?.rate)), ratioCell(ratio(b.rate, cBusy?.rate)), ratioCell(ratio(b.serverCpu, n1?.serverCpu)), ratioCell(ratio(b.serverCpu, cBusy?.serverCpu)), '-']);
  }
  void quick;
  return [
    main,
    {
      title: 'Throughput ratios (medians)',
      header: ['shape', 'rate m-socket/node:net', 'rate m-socket/C', 'CPU m-socket/node:net', 'CPU m-socket/C', 'CPU node:net/C'],
      rows,
      notes: [
        'busy-poll rows: m-socket busy server vs node:net (normal) and vs the C server in busy-poll mode ("C busy", full mode only).',
        'io_uring rows: the m-socket server on its io_uring backend vs the same server on epoll (in the node:net columns) and vs the C epoll server.',
      ],
    },
  ];
}

function checks(results: ShapeResult[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  const cpu = ratio(get(results, 'm-socket', 'ping-pong 50 conns')?.serverCpu, get(results, 'C epoll', 'ping-pong 50 conns')?.serverCpu);
  out.push({ target: 'server CPU per 64 B request <= 1.2x the C server (50 conns)', value: `${cpu.toFixed(2)}x`, met: Number.isFinite(cpu) ? cpu <= 1.2 : null });
  const pp = ratio(get(results, 'm-socket', 'ping-pong 50 conns')?.rate, get(results, 'node:net', 'ping-pong 50 conns')?.rate);
  out.push({ target: 'ping-pong over 50 connections >= 1.3x node:net req/s', value: `${pp.toFixed(2)}x`, met: Number.isFinite(pp) ? pp >= 1.3 : null });
  const bulk = ratio(get(results, 'm-socket', 'bulk echo')?.rate, get(results, 'node:net', 'bulk echo')?.rate);
  out.push({ target: 'bulk echo >= 1.5x node:net MB/s', value: `${bulk.toFixed(2)}x`, met: Number.isFinite(bulk) ? bulk >= 1.5 : null });
  for (const [kind, label] of [
    ['m-socket busy', 'bench-only spin loop'],
    ['m-socket lib busy', 'Reactor busyPollMs option'],
  ] as const) {
    const b = get(results, kind, 'ping-pong 1 conn');
    const busy = ratio(b?.rate, get(results, 'node:net', 'ping-pong 1 conn')?.rate);
    out.push({
      target: `busy-poll 1-conn ping-pong >= 2.5x node:net req/s (${label})`,
      value: b === undefined ? 'not available in this library version' : `${busy.toFixed(2)}x`,
      met: Number.isFinite(busy) ? busy >= 2.5 : null,
    });
  }
  return out;
}
