/**
 * In-process hot-path A/B: 50 Socket.pair() pairs echo 64-byte messages through
 * Multiplexer.wait(0) + receiveInto + send, in this checkout and (with `--baseline DIR`) in
 * another checkout of the library loaded into the same process, rounds interleaved so that
 * both see the same machine. Prints min / median ns per request over the rounds.
 *
 *   node --import tsx bench/hot-path-ab.ts --baseline /path/to/other/checkout [--rounds 10]
 *
 * The other checkout needs lib/ and ffi/ and a node_modules with koffi (a symlink will do).
 */
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

type Lib = typeof import('../lib/index.ts');
type Ffi = typeof import('../ffi/index.ts');

const CALLS_PER_ROUND = 200_000;

const STUB_CALLS_PER_ROUND = 2_000_000;

/** ns per call of `checked` around a JS stub of 4 arguments (the shape of send and recv). */
function wrapperRunner(ffi: Ffi): { round(): number; close(): void } {
  const wrapped = ffi.checked('stub', (_fd: number, _buf: unknown, len: number, _flags: number) => len);
  const buffer = new Uint8Array(64);
  return {
    round() {
      let sum = 0;
      const start = process.hrtime.bigint();
      for (let i = 0; i < STUB_CALLS_PER_ROUND; i++) sum += wrapped(3, buffer, i & 63, 0);
      if (sum < 0) throw new Error('unreachable');
      return Number(process.hrtime.bigint() - start) / STUB_CALLS_PER_ROUND;
    },
    close() {},
  };
}

/** ns per call of the cheapest checked wrapper, fcntl(F_GETFL), on a socket of that copy. */
function chokePointRunner(ffi: Ffi, lib: Lib): { round(): number; close(): void } {
  const [a, b] = lib.Socket.pair();
  const { sys, F_GETFL } = ffi;
  const fd = a.fd;
  return {
    round() {
      let sum = 0;
      const start = process.hrtime.bigint();
      for (let i = 0; i < CALLS_PER_ROUND; i++) sum += sys.fcntl(fd, F_GETFL, 0);
      if (sum === 0) throw new Error('fcntl returned no flags');
      return Number(process.hrtime.bigint() - start) / CALLS_PER_ROUND;
    },
    close() {
      a.destroy();
      b.destroy();
    },
  };
}

const PAIRS = 50;
const MESSAGES_PER_ROUND = 20_000;

function args(): { baseline: string | null; rounds: number } {
  const argv = process.argv.slice(2);
  const at = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return { baseline: at('--baseline') ?? null, rounds: Number(at('--rounds') ?? 10) };
}

/** Builds the echo set-up with one copy of the library; `round()` returns ns per request. */
function echoRunner(lib: Lib): { round(): number; close(): void } {
  const serverMux = new lib.Multiplexer();
  const clientMux = new lib.Multiplexer();
  const pairs = Array.from({ length: PAIRS }, () => lib.Socket.pair());
  for (const [client, server] of pairs) {
    serverMux.add(server);
    clientMux.add(client);
  }
  const message = new Uint8Array(64).fill(7);
  const serverBuffer = serverMux.receiveBuffer;
  const clientBuffer = clientMux.receiveBuffer;
  return {
    round() {
      let answered = 0;
      const start = process.hrtime.bigint();
      while (answered < MESSAGES_PER_ROUND) {
        for (const [client] of pairs) client.send(message);
        let pending = PAIRS;
        while (pending > 0) {
          const events = serverMux.wait(0);
          for (let i = 0; i < events.length; i++) {
            const socket = events[i].target as InstanceType<Lib['Socket']>;
            const n = socket.receiveInto(serverBuffer);
            if (n > 0) socket.send(serverBuffer, n);
          }
          const replies = clientMux.wait(0);
          for (let i = 0; i < replies.length; i++) {
            const n = (replies[i].target as InstanceType<Lib['Socket']>).receiveInto(clientBuffer);
            if (n > 0) pending -= n / 64;
          }
        }
        answered += PAIRS;
      }
      return Number(process.hrtime.bigint() - start) / answered;
    },
    close() {
      serverMux.close();
      clientMux.close();
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
    },
  };
}

function summary(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  const digits = sorted[0] < 100 ? 1 : 0;
  return `min ${sorted[0].toFixed(digits)} ns, median ${median.toFixed(digits)} ns`;
}

const { baseline, rounds } = args();
const copies: [string, Lib, Ffi][] = [['this checkout', await import('../lib/index.ts'), await import('../ffi/index.ts')]];
if (baseline !== null) {
  const load = (path: string) => import(pathToFileURL(join(baseline, path)).href);
  copies.push([`baseline ${baseline}`, (await load('lib/index.ts')) as Lib, (await load('ffi/index.ts')) as Ffi]);
}
for (const [what, make, unit] of [
  ['50-pair echo', (lib: Lib) => echoRunner(lib), `per request (${PAIRS} pairs, rounds of ${MESSAGES_PER_ROUND})`],
  ['choke point', (lib: Lib, ffi: Ffi) => chokePointRunner(ffi, lib), `per sys.fcntl(F_GETFL) call (rounds of ${CALLS_PER_ROUND})`],
  ['wrapper alone', (_lib: Lib, ffi: Ffi) => wrapperRunner(ffi), `per checked() call around a JS stub (rounds of ${STUB_CALLS_PER_ROUND})`],
] as const) {
  const runners = copies.map(([label, lib, ffi]) => [label, make(lib, ffi)] as const);
  for (const [, runner] of runners) runner.round(); // warm up every copy before measuring
  const results = runners.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    // Alternate who goes first, so neither always runs on a warmer or cooler machine.
    const order = r % 2 === 0 ? runners.map((_, i) => i) : runners.map((_, i) => runners.length - 1 - i);
    for (const i of order) results[i].push(runners[i][1].round());
  }
  for (const [i, [label, runner]] of runners.entries()) {
    console.log(`${what}, ${label}: ${summary(results[i])} ${unit}, ${rounds} rounds`);
    runner.close();
  }
  if (results.length === 2) {
    // Rounds run back to back, so a busy machine slows both copies of a round alike: the median
    // of the per-round differences is steadier than the difference of the medians.
    const diffs = results[0].map((v, r) => ((v - results[1][r]) / results[1][r]) * 100).sort((a, b) => a - b);
    const mid = diffs.length % 2 ? diffs[(diffs.length - 1) / 2] : (diffs[diffs.length / 2 - 1] + diffs[diffs.length / 2]) / 2;
    console.log(`${what}: this checkout vs baseline, median of per-round differences ${mid >= 0 ? '+' : ''}${mid.toFixed(1)}%`);
  }
}
