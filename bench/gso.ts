/**
 * GSO send benchmark: CPU per datagram to send 1200-byte datagrams one way over loopback, by
 * node:dgram (socket.send per datagram) and by m-socket (sendTo per datagram, sendBatch over
 * sendmmsg, sendSegments with UDP GSO). Each sender runs in its own process pinned to core 0; a
 * receiving socket (with GRO, see below) is bound and never read (loopback drops what does not
 * fit: the sender's cost is what is measured). Figures: medians over runs, alternating order. Target (issue 14): GSO send
 * >= 10x node:dgram, as datagrams per CPU second.
 *
 *   node --import tsx bench/gso.ts [--quick]
 */
import { join } from 'node:path';
import { DatagramSocket } from '../lib/index.ts';
import { BENCH_DIR } from './lib/build.ts';
import { installCleanup, parseKV, run } from './lib/proc.ts';
import { Progress } from './lib/progress.ts';
import { ratio, summarize, type Summary } from './lib/stats.ts';

export const GSO_SENDERS = ['node:dgram', 'm-socket sendTo', 'm-socket sendBatch', 'm-socket GSO'] as const;
export type GsoSender = (typeof GSO_SENDERS)[number];
const MODE: Record<GsoSender, string> = { 'node:dgram': 'dgram', 'm-socket sendTo': 'sendTo', 'm-socket sendBatch': 'batch', 'm-socket GSO': 'gso' };
const SIZE = 1200;

export interface GsoResult {
  sender: GsoSender;
  /** Sender CPU (user + system) per datagram, in µs. */
  cpuUs: Summary;
  /** Datagrams per CPU second. */
  perCpuSecond: Summary;
}

export async function runGso(options: { quick: boolean; log: (s: string) => void }): Promise<GsoResult[]> {
  const runs = options.quick ? 2 : 5;
  const count = options.quick ? 100_000 : 400_000;
  const progress = new Progress(runs * GSO_SENDERS.length, options.log);
  const sink = DatagramSocket.bind({ host: '127.0.0.1' });
  // With GRO on, loopback hands a GSO send to the receiver whole instead of cutting it up again in
  // the sender's context: what remains is the sender's own cost, as towards a real NIC that
  // segments in hardware. Plain datagrams (node:dgram, sendTo, sendBatch) are not affected.
  sink.requestMetadata({ gro: true });
  const port = sink.port;
  const samples = new Map<GsoSender, number[]>(GSO_SENDERS.map((s) => [s, []]));
  try {
    for (let r = 0; r < runs; r++) {
      for (const sender of r % 2 === 0 ? GSO_SENDERS : [...GSO_SENDERS].reverse()) {
        progress.step(`gso ${sender}, run ${r + 1}/${runs}`);
        const out = await run(process.execPath, ['--import', 'tsx', join(BENCH_DIR, 'servers', 'udp-sender.ts'), MODE[sender], String(count), String(SIZE), String(port)], { core: 0, timeoutMs: 120_000 });
        const kv = parseKV(out);
        samples.get(sender)!.push(kv.cpu_us / kv.sent);
      }
    }
  } finally {
    sink.destroy();
  }
  return GSO_SENDERS.map((sender) => {
    const cpuUs = summarize(samples.get(sender)!);
    return { sender, cpuUs, perCpuSecond: summarize(samples.get(sender)!.map((us) => 1e6 / us)) };
  });
}

export function gsoTable(results: GsoResult[]): string {
  const dgram = results.find((r) => r.sender === 'node:dgram')!;
  const lines = ['| sender (1200 B datagrams) | CPU per datagram | datagrams per CPU second | vs node:dgram |', '|---|---|---|---|'];
  for (const r of results) {
    lines.push(`| ${r.sender} | ${r.cpuUs.median.toFixed(2)} µs ±${(r.cpuUs.spread * 50).toFixed(0)}% | ${Math.round(r.perCpuSecond.median).toLocaleString('en-US')} | ${ratio(r.perCpuSecond, dgram.perCpuSecond).toFixed(2)}x |`);
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  installCleanup();
  const results = await runGso({ quick: process.argv.includes('--quick'), log: (s) => process.stderr.write(`[bench] ${s}\n`) });
  console.log(gsoTable(results));
  process.exit(0);
}
