/**
 * A/B of the send hot path between this tree and another checkout of the library (e.g. main),
 * side by side in one process, rounds interleaved:
 *
 *   mkdir .ab-before && git archive main lib ffi | tar -x -C .ab-before   # inside the repo: koffi resolves
 *   node --import tsx bench/send-ab.ts .ab-before
 *
 * - ping-pong: 50 Socket.pair() pairs echo 64 B through Multiplexer.wait(0) + receiveInto + send
 *   (the send path: every send is 'sent');
 * - bulk: 50 pairs, each side sends 256 KiB at a time and the other drains it (the queue and the
 *   flush path: sends answer 'partial', the multiplexer flushes).
 *
 * Prints min and median of 10 rounds (ns per event), for each tree.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';

type Lib = typeof import('../lib/index.ts');

const other = process.argv[2];
if (!other) {
  process.stderr.write('usage: node --import tsx bench/send-ab.ts PATH-OF-OTHER-TREE\n');
  process.exit(2);
}
const trees: [string, Lib][] = [
  ['before', (await import(pathToFileURL(path.resolve(other, 'lib/index.ts')).href)) as Lib],
  // A second path compares two other trees (an A/A run with the same tree twice shows the noise).
  ['after', (await import(process.argv[3] ? pathToFileURL(path.resolve(process.argv[3], 'lib/index.ts')).href : '../lib/index.ts')) as Lib],
];

const PAIRS = 50;
const ROUNDS = 10;

function pingPong(lib: Lib, events: number): number {
  const mux = new lib.Multiplexer();
  const sockets = Array.from({ length: PAIRS }, () => lib.Socket.pair()).flat();
  for (const s of sockets) mux.add(s);
  const buffer = new Uint8Array(64 * 1024);
  for (let i = 0; i < sockets.length; i += 2) sockets[i].send(new Uint8Array(64));
  const start = process.hrtime.bigint();
  let seen = 0;
  while (seen < events) {
    for (const event of mux.wait(0)) {
      const s = event.target as InstanceType<Lib['Socket']>;
      const n = s.receiveInto(buffer);
      if (n > 0) s.send(buffer, n);
      seen++;
    }
  }
  const ns = Number(process.hrtime.bigint() - start) / seen;
  for (const s of sockets) s.destroy();
  mux.close();
  return ns;
}

function bulk(lib: Lib, events: number): number {
  const mux = new lib.Multiplexer();
  const pairs = Array.from({ length: PAIRS }, () => lib.Socket.pair({ sendQueueLimit: 512 * 1024 }));
  for (const [a, b] of pairs) {
    mux.add(a, 0);
    mux.add(b);
  }
  const chunk = new Uint8Array(256 * 1024);
  const buffer = new Uint8Array(64 * 1024);
  for (const [a] of pairs) a.send(chunk);
  const start = process.hrtime.bigint();
  let seen = 0;
  while (seen < events) {
    for (const event of mux.wait(0)) {
      seen++;
      const s = event.target as InstanceType<Lib['Socket']>;
      if (event.writable && !s.sendQueueFull) s.send(chunk);
      if (event.readable) while (s.receiveInto(buffer) > 0);
    }
    for (const [a] of pairs) if (a.queuedBytes === 0) a.send(chunk);
  }
  const ns = Number(process.hrtime.bigint() - start) / seen;
  for (const [a, b] of pairs) {
    a.destroy();
    b.destroy();
  }
  mux.close();
  return ns;
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 };
};

for (const [name, run, events] of [['ping-pong 64 B', pingPong, 100_000], ['bulk 256 KiB', bulk, 20_000]] as const) {
  for (const [, lib] of trees) run(lib, events / 5); // warm up both
  const results = new Map<string, number[]>(trees.map(([tree]) => [tree, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [tree, lib] of round % 2 === 0 ? trees : [...trees].reverse()) results.get(tree)!.push(run(lib, events));
  }
  for (const [tree, xs] of results) {
    const { min, median } = stats(xs);
    console.log(`${name.padEnd(16)} ${tree.padEnd(7)} min ${min.toFixed(0).padStart(6)} ns/event   median ${median.toFixed(0).padStart(6)} ns/event`);
  }
}
