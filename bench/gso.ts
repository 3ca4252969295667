/**
 * GSO send benchmark: CPU per datagram to send 1200-byte datagrams one way over loopback, by
 * node:dgram (socket.send per datagram), by m-socket (sendTo per datagram, sendBatch over
 * sendmmsg, sendSegments with UDP GSO) and by C (bench/c/udp_send.c: sendto per datagram, and
 * GSO with the same 54 datagrams per call; skipped where there is no C compiler). Each sender runs in its own process pinned to core 0; a
 * receiving socket (with GRO, see below) is bound and never read (loopback drops what does not
 * fit: the sender's cost is what is measured). Figures: medians over runs, alternating order. Target (issue 14): GSO send
 * >= 10x node:dgram, as datagrams per CPU second.
 *
 *   node --import tsx bench/gso.ts [--quick]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DatagramSocket } from '../lib/index.ts';
import { BENCH_DIR, BUILD_DIR } from './lib/build.ts';
import { installCleanup, machine, parseKV, run } from './lib/proc.ts';
import { Progress } from './lib/progress.ts';
import { ratio, summarize, type Summary } from './lib/stats.ts';

export const GSO_SENDERS = ['node:dgram', 'm-socket sendTo', 'm-socket sendBatch', 'm-socket GSO', 'C sendto', 'C GSO'] as const;
export type GsoSender = (typeof GSO_SENDERS)[number];
const MODE: Record<GsoSender, string> = {
  'node:dgram': 'dgram', 'm-socket sendTo': 'sendTo', 'm-socket sendBatch': 'batch', 'm-socket GSO': 'gso', 'C sendto': 'sendto', 'C GSO': 'gso',
};

/** Compiles bench/c/udp_send.c into bench/.build (when its source is newer), or null without a C compiler. */
function buildCSender(): string | null {
  if (!machine.cc) return null;
  mkdirSync(BUILD_DIR, { recursive: true });
  const src = join(BENCH_DIR, 'c', 'udp_send.c');
  const bin = join(BUILD_DIR, 'udp_send');
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    const r = spawnSync('cc', ['-O2', '-Wall', '-o', bin, src], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cc failed on udp_send.c: ${r.stderr}`);
  }
  return bin;
}
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
  // Enough datagrams that start-up (JIT, first calls) is noise: at 400,000 it was most of a GSO
  // sender's CPU (49 ms for m-socket against 18 ms for C; 230 against 173 ms at 4 million).
  const count = options.quick ? 200_000 : 2_000_000;
  const cSender = buildCSender();
  if (cSender === null) options.log('gso: no C compiler, the C senders are skipped');
  const senders = GSO_SENDERS.filter((s) => cSender !== null || !s.startsWith('C '));
  const progress = new Progress(runs * senders.length, options.log);
  const sink = DatagramSocket.bind({ host: '127.0.0.1' });
  // With GRO on, loopback hands a GSO send to the receiver whole instead of cutting it up again in
  // the sender's context: what remains is the sender's own cost, as towards a real NIC that
  // segments in hardware. Plain datagrams (node:dgram, sendTo, sendBatch) are not affected.
  sink.requestMetadata({ gro: true });
  const port = sink.port;
  const samples = new Map<GsoSender, number[]>(GSO_SENDERS.map((s) => [s, []]));
  try {
    for (let r = 0; r < runs; r++) {
      for (const sender of r % 2 === 0 ? senders : [...senders].reverse()) {
        progress.step(`gso ${sender}, run ${r + 1}/${runs}`);
        const args = [MODE[sender], String(count), String(SIZE), String(port)];
        const out = sender.startsWith('C ')
          ? await run(cSender!, args, { core: 0, timeoutMs: 120_000 })
          : await run(process.execPath, ['--import', 'tsx', join(BENCH_DIR, 'servers', 'udp-sender.ts'), ...args], { core: 0, timeoutMs: 120_000 });
        const kv = parseKV(out);
        samples.get(sender)!.push(kv.cpu_us / kv.sent);
      }
    }
  } finally {
    sink.destroy();
  }
  return senders.map((sender) => {
    const cpuUs = summarize(samples.get(sender)!);
    return { sender, cpuUs, perCpuSecond: summarize(samples.get(sender)!.map((us) => 1e6 / us)) };
  });
}

export function gsoTable(results: GsoResult[]): string {
  const dgram = results.find((r) => r.sender === 'node:dgram')!;
  const cGso = results.find((r) => r.sender === 'C GSO');
  const lines = ['| sender (1200 B datagrams) | CPU per datagram | datagrams per CPU second | vs node:dgram | vs C GSO |', '|---|---|---|---|---|'];
  for (const r of results) {
    const vsC = cGso === undefined ? '-' : `${ratio(r.perCpuSecond, cGso.perCpuSecond).toFixed(2)}x`;
    lines.push(`| ${r.sender} | ${r.cpuUs.median.toFixed(2)} µs ±${(r.cpuUs.spread * 50).toFixed(0)}% | ${Math.round(r.perCpuSecond.median).toLocaleString('en-US')} | ${ratio(r.perCpuSecond, dgram.perCpuSecond).toFixed(2)}x | ${vsC} |`);
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  installCleanup();
  const results = await runGso({ quick: process.argv.includes('--quick'), log: (s) => process.stderr.write(`[bench] ${s}\n`) });
  console.log(gsoTable(results));
  process.exit(0);
}
