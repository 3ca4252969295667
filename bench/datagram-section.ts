/**
 * The datagram part of `npm run bench` (`--only datagram`): bench/datagram.ts (echo servers under a
 * C load generator, closed loop and blast) and bench/gso.ts (GSO send), as tables and the issue-14
 * targets, measured as ratios against node:dgram and a C server in the same run.
 */
import type { TargetCheck } from './copy-costs.ts';
import { DATAGRAM_MODES, DATAGRAM_SERVERS, DATAGRAM_SIZES, datagramTables, runDatagram, type BlastResult, type DatagramMode, type DatagramResult } from './datagram.ts';
import { runGso, type GsoResult } from './gso.ts';
import { ratio } from './lib/stats.ts';
import { ratioCell, type Table } from './lib/table.ts';

export interface DatagramSectionResults {
  /** Closed-loop echo (null without a C compiler, or when not asked). */
  echo: DatagramResult[] | null;
  /** Blast echo (null likewise). */
  blast: BlastResult[] | null;
  gso: GsoResult[];
}

/** The targets, from the closed-loop figures (the issue states them for that load). */
export function datagramChecks(echo: DatagramResult[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const size of DATAGRAM_SIZES) {
    const of = (kind: (typeof DATAGRAM_SERVERS)[number]) => echo.find((y) => y.server === kind && y.size === size);
    const rate = ratio(of('m-socket batch')?.perSecond, of('node:dgram')?.perSecond);
    const cpu = ratio(of('m-socket batch')?.cpuUs, of('C recvmmsg')?.cpuUs);
    checks.push({ target: `datagrams/s ${size} B >= 2.5x node:dgram`, value: ratioCell(rate), met: Number.isFinite(rate) ? rate >= 2.5 : null });
    checks.push({ target: `CPU per datagram ${size} B <= 1.1x C recvmmsg`, value: ratioCell(cpu), met: Number.isFinite(cpu) ? cpu <= 1.1 : null });
  }
  return checks;
}

export async function runDatagramSection(options: { quick: boolean; modes?: readonly DatagramMode[]; log: (s: string) => void }): Promise<{ tables: Table[]; checks: TargetCheck[]; results: DatagramSectionResults }> {
  const runs = await runDatagram({ quick: options.quick, modes: options.modes ?? DATAGRAM_MODES, log: options.log });
  const gso = await runGso(options);
  const tables: Table[] = runs === null ? [] : datagramTables(runs);
  const checks: TargetCheck[] = runs?.closed ? datagramChecks(runs.closed) : [];
  const dgram = gso.find((r) => r.sender === 'node:dgram')!;
  tables.push({
    title: 'UDP send, 1200 B datagrams (sender CPU, GRO receiver on loopback)',
    header: ['sender', 'CPU µs/datagram', 'datagrams per CPU second', 'vs node:dgram'],
    rows: gso.map((r) => [r.sender, r.cpuUs, r.perCpuSecond, ratioCell(ratio(r.perCpuSecond, dgram.perCpuSecond))]),
  });
  const gsoRatio = ratio(gso.find((r) => r.sender === 'm-socket GSO')!.perCpuSecond, dgram.perCpuSecond);
  checks.push({ target: 'GSO send >= 10x node:dgram (datagrams per CPU second)', value: ratioCell(gsoRatio), met: Number.isFinite(gsoRatio) ? gsoRatio >= 10 : null });
  return { tables, checks, results: { echo: runs?.closed ?? null, blast: runs?.blast ?? null, gso } };
}
