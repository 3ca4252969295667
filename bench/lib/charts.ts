/**
 * The charts of bench/RESULTS.md, built from the JSON that `npm run bench -- --json FILE` writes:
 * one chart per table, ratios of m-socket against node:net and against the C server (or, for the
 * in-process copy costs, against a bare koffi call and the original's copying strategy), each bar
 * the median of the per-run ratios with the smallest and largest as whiskers.
 *
 * Ratios are taken run by run: in run i every server (or path) was measured in turn, so
 * a.runs[i] / b.runs[i] pairs figures taken minutes apart at most, and the spread of those ratios
 * says how far the comparison (not each absolute figure) moved between runs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Summary } from './stats.ts';
import { median } from './stats.ts';
import { renderChart, type ChartSpec, type Spread } from './svg-chart.ts';

/** The parts of the bench JSON the charts read (see run.ts; older files may lack sections). */
export interface BenchJson {
  env?: { date?: string; mode?: string; command?: string; node?: string; cores?: number; cpu?: string; loadavgAtStart?: string };
  copyCosts?: { size: number; path: string; sendNs: Summary; recvNs: Summary }[];
  throughput?: { server: string; shape: string; rate: Summary; serverCpu: Summary }[];
  scale?: {
    memory?: { server: string; mode: string; connections: number; kibPerConnection: number }[];
    accept?: { server: string; cps: Summary; serverCpuUsPerConn: Summary }[];
  };
}

/** Run-by-run ratios a[i] / b[i], summarised; null when no run has both figures. */
export function pairedRatio(a: Summary | undefined, b: Summary | undefined): Spread | null {
  if (!a || !b) return null;
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(a.runs.length, b.runs.length); i++) {
    const r = a.runs[i] / b.runs[i];
    if (Number.isFinite(r) && r > 0) ratios.push(r);
  }
  if (ratios.length === 0) return null;
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) };
}

function sizeName(size: number): string {
  return size >= 1 << 20 ? `${size / (1 << 20)} MiB` : size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
}

export interface Chart {
  /** File name without extension, e.g. `throughput-rate`. */
  name: string;
  spec: ChartSpec;
  svg: string;
}

/** Every chart the results allow, in the order of RESULTS.md's tables. */
export function chartsFromResults(json: BenchJson, source: string): Chart[] {
  const env = json.env ?? {};
  const notes = [
    `Source: ${source}${env.command ? ` (${env.command})` : ''}; ${env.mode ?? '?'} run, ${env.date ?? 'date unknown'}, node ${env.node ?? '?'}, ${env.cores ?? '?'} x ${env.cpu ?? '?'}, load at start ${env.loadavgAtStart ?? '?'}.`,
    'Bar: median of the run-by-run ratios; whiskers: smallest and largest run.',
  ];
  const specs: [string, ChartSpec][] = [];

  const copy = json.copyCosts ?? [];
  if (copy.length > 0) {
    const find = (path: string, size: number) => copy.find((r) => r.path === path && r.size === size);
    const sizes = [...new Set(copy.map((r) => r.size))].sort((a, b) => a - b);
    const rows = [];
    for (const size of sizes) {
      for (const op of ['sendNs', 'recvNs'] as const) {
        const m = find('m-socket', size)?.[op];
        rows.push({
          label: `${sizeName(size)} ${op === 'sendNs' ? 'send' : 'receive'}`,
          values: [pairedRatio(m, find('bare koffi', size)?.[op]), pairedRatio(m, find('copy/alloc', size)?.[op]), pairedRatio(m, find('node:net', size)?.[op])],
        });
      }
    }
    specs.push([
      'copy-costs',
      {
        title: 'Copy costs: ns per message, m-socket against',
        subtitle: 'Lower is better; 1x = as cheap as the reference. node:net receive is per data event, amortised (see the table).',
        series: ['bare koffi call (the floor)', "the original's copy strategy", 'node:net'],
        rows,
        scale: 'log',
        axisLabel: 'cost ratio (m-socket / reference), log scale',
        notes,
      },
    ]);
  }

  const tp = json.throughput ?? [];
  if (tp.length > 0) {
    const get = (server: string, shape: string) => tp.find((r) => r.server === server && r.shape === shape);
    const shapes = ['ping-pong 1 conn', 'ping-pong 50 conns', 'bulk echo'].filter((s) => get('m-socket', s));
    const busyRows = (field: 'rate' | 'serverCpu') =>
      ['m-socket busy', 'm-socket lib busy']
        .filter((k) => get(k, 'ping-pong 1 conn'))
        .map((k) => ({
          label: `${k}, ping-pong 1 conn`,
          values: [pairedRatio(get(k, 'ping-pong 1 conn')?.[field], get('node:net', 'ping-pong 1 conn')?.[field]), pairedRatio(get(k, 'ping-pong 1 conn')?.[field], get('C busy', 'ping-pong 1 conn')?.[field])],
        }));
    for (const [field, name, title, subtitle] of [
      ['rate', 'throughput-rate', 'Throughput: req/s (MB/s for bulk), m-socket against', 'Higher is better. Busy-poll rows: against node:net as usual and the C server busy-polling ("C busy", full runs only).'],
      ['serverCpu', 'throughput-cpu', 'Server CPU per request (per MB for bulk), m-socket against', 'Lower is better: CPU time of the server process (user + sys) per request.'],
    ] as const) {
      specs.push([
        name,
        {
          title,
          subtitle,
          series: ['node:net', 'C epoll server'],
          rows: [
            ...shapes.map((s) => ({ label: s, values: [pairedRatio(get('m-socket', s)?.[field], get('node:net', s)?.[field]), pairedRatio(get('m-socket', s)?.[field], get('C epoll', s)?.[field])] })),
            ...busyRows(field),
          ],
          scale: 'log',
          axisLabel: `${field === 'rate' ? 'rate' : 'CPU'} ratio (m-socket / reference), log scale`,
          notes,
        },
      ]);
    }
  }

  const accept = json.scale?.accept ?? [];
  if (accept.length > 0) {
    const a = (k: string) => accept.find((x) => x.server === k);
    specs.push([
      'accept-rate',
      {
        title: 'Accept rate: connect, 1-byte echo, close; m-socket against',
        subtitle: 'Connections/s: higher is better. Server CPU per connection: lower is better.',
        series: ['node:net', 'C epoll server'],
        rows: [
          { label: 'connections/s', values: [pairedRatio(a('m-socket')?.cps, a('node:net')?.cps), pairedRatio(a('m-socket')?.cps, a('C epoll')?.cps)] },
          {
            label: 'server CPU per connection',
            values: [pairedRatio(a('m-socket')?.serverCpuUsPerConn, a('node:net')?.serverCpuUsPerConn), pairedRatio(a('m-socket')?.serverCpuUsPerConn, a('C epoll')?.serverCpuUsPerConn)],
          },
        ],
        scale: 'log',
        axisLabel: 'ratio (m-socket / reference), log scale',
        notes,
      },
    ]);
  }

  const memory = json.scale?.memory ?? [];
  if (memory.length > 0) {
    const servers = ['m-socket', 'node:net', 'C epoll'].filter((k) => memory.some((x) => x.server === k));
    const modes = [...new Set(memory.map((x) => x.mode))];
    // One run each (a fresh server per reading): no spread to draw. A ratio against C is
    // meaningless here (C's RSS does not grow), so the chart shows KiB per connection itself.
    const one = (v: number | undefined): Spread | null => (v === undefined || !Number.isFinite(v) ? null : { median: v, min: v, max: v });
    specs.push([
      'memory',
      {
        title: 'Memory per connection: server RSS growth / connections',
        subtitle: 'KiB per connection, lower is better; one reading each on a fresh server (kernel socket buffers are not in RSS).',
        series: servers,
        rows: modes.map((mode) => {
          const n = memory.find((x) => x.mode === mode)?.connections;
          return { label: `${mode}, ${n ?? '?'} connections`, values: servers.map((k) => one(memory.find((x) => x.server === k && x.mode === mode)?.kibPerConnection)) };
        }),
        scale: 'linear',
        axisLabel: 'KiB per connection',
        notes: [notes[0]],
      },
    ]);
  }
  return specs.map(([name, spec]) => ({ name, spec, svg: renderChart(spec) }));
}

/** Writes every chart as DIR/NAME.svg; returns the paths written. */
export function writeCharts(json: BenchJson, dir: string, source: string): string[] {
  mkdirSync(dir, { recursive: true });
  return chartsFromResults(json, source).map((c) => {
    const path = join(dir, `${c.name}.svg`);
    writeFileSync(path, c.svg);
    return path;
  });
}
