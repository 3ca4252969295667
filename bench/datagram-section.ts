/**
 * The datagram part of `npm run bench` (`--only datagram`): bench/datagram.ts (echo servers under a
 * C load generator) and bench/gso.ts (GSO send), as tables and the issue-14 targets, measured as
 * ratios against node:dgram and a C server in the same run.
 */
import type { TargetCheck } from './copy-costs.ts';
import { DATAGRAM_SERVERS, runDatagram, type DatagramResult } from './datagram.ts';
import { runGso, type GsoResult } from './gso.ts';
import { ratio } from './lib/stats.ts';
import { ratioCell, type Table } from './lib/table.ts';

export async function runDatagramSection(options: { quick: boolean; log: (s: string) => void }): Promise<{ tables: Table[]; checks: TargetCheck[]; results: { echo: DatagramResult[] | null; gso: GsoResult[] } }> {
  const echo = await runDatagram({ quick: options.quick, log: options.log });
  const gso = await runGso(options);
  const tables: Table[] = [];
  const checks: TargetCheck[] = [];
  if (echo !== null) {
    const rows = echo.map((x) => {
      const of = (kind: (typeof DATAGRAM_SERVERS)[number]) => echo.find((y) => y.server === kind && y.size === x.size)!;
      return [`${x.size} B`, x.server, x.perSecond, ratioCell(ratio(x.perSecond, of('node:dgram').perSecond)), x.cpuUs, ratioCell(ratio(x.cpuUs, of('C recvmmsg').cpuUs)), x.lost];
    });
    tables.push({
      title: 'Datagram echo (32 flows x 16 in flight, C load generator on core 1)',
      header: ['size', 'server', 'datagrams/s', 'vs node:dgram', 'server CPU µs/datagram', 'vs C recvmmsg', 'lost'],
      rows,
    });
    for (const size of [64, 1200]) {
      const of = (kind: (typeof DATAGRAM_SERVERS)[number]) => echo.find((y) => y.server === kind && y.size === size)!;
      const rate = ratio(of('m-socket batch').perSecond, of('node:dgram').perSecond);
      const cpu = ratio(of('m-socket batch').cpuUs, of('C recvmmsg').cpuUs);
      checks.push({ target: `datagrams/s ${size} B >= 2.5x node:dgram`, value: ratioCell(rate), met: Number.isFinite(rate) ? rate >= 2.5 : null });
      checks.push({ target: `CPU per datagram ${size} B <= 1.1x C recvmmsg`, value: ratioCell(cpu), met: Number.isFinite(cpu) ? cpu <= 1.1 : null });
    }
  }
  const dgram = gso.find((r) => r.sender === 'node:dgram')!;
  tables.push({
    title: 'UDP send, 1200 B datagrams (sender CPU, GRO receiver on loopback)',
    header: ['sender', 'CPU µs/datagram', 'datagrams per CPU second', 'vs node:dgram'],
    rows: gso.map((r) => [r.sender, r.cpuUs, r.perCpuSecond, ratioCell(ratio(r.perCpuSecond, dgram.perCpuSecond))]),
  });
  const gsoRatio = ratio(gso.find((r) => r.sender === 'm-socket GSO')!.perCpuSecond, dgram.perCpuSecond);
  checks.push({ target: 'GSO send >= 10x node:dgram (datagrams per CPU second)', value: ratioCell(gsoRatio), met: Number.isFinite(gsoRatio) ? gsoRatio >= 10 : null });
  return { tables, checks, results: { echo, gso } };
}
