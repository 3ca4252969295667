/**
 * The hot path in one process, with no network stack noise beyond Unix socketpairs: what the
 * library adds per request over raw koffi calls doing the same work.
 *
 *   node --import tsx bench/hot-path.ts [--pairs 50] [--rounds 10] [--requests 20000] [--reactor]
 *                                       [--backend epoll|io_uring]
 *
 * 50 `Socket.pair()` pairs. Per round, the client side sends one 64 B message on each pair (raw
 * send), the server side echoes them, the client reads every echo back (raw recv); a round is
 * repeated until `--requests` requests were served. The server side is either
 * - `m-socket`: `Multiplexer.wait(0)` + `receiveInto` + `send(buffer, n)` (or, with `--reactor`,
 *   `Reactor.drain()` with one handler doing the same), or
 * - `raw koffi`: `epoll_wait` + `recv` + `send` through the bare koffi bindings, reading the
 *   epoll_event buffer with a DataView (the floor the library is judged against).
 * The two alternate, round after round, so that machine noise hits both; printed: CPU ns per
 * request of each (min and median over rounds) and the difference, which is the library's own cost.
 * With `--backend io_uring`, a third server, m-socket on the io_uring backend, joins the rotation,
 * and the ratio io_uring / epoll of each round is printed (median, min and max).
 *
 * Run it from two checkouts side by side (same flags) to compare a change with its parent.
 */
import { Multiplexer, Reactor, Socket } from '../lib/index.ts';
import { EPOLL_CTL_ADD, EPOLLIN, libc, MSG_NOSIGNAL, OFFSETOF, SIZEOF } from '../ffi/index.ts';
import { median } from './lib/stats.ts';

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at < 0 ? fallback : Number(process.argv[at + 1]);
}

const PAIRS = flag('pairs', 50);
const ROUNDS = flag('rounds', 10);
const REQUESTS = flag('requests', 20000);
const USE_REACTOR = process.argv.includes('--reactor');
const BACKEND_AT = process.argv.indexOf('--backend');
const BACKEND = BACKEND_AT < 0 ? 'epoll' : process.argv[BACKEND_AT + 1];
if (BACKEND !== 'epoll' && BACKEND !== 'io_uring') throw new Error(`--backend epoll|io_uring, not ${BACKEND}`);
const SIZE = 64;

const message = new Uint8Array(SIZE).fill(7);
const clientBuffer = new Uint8Array(SIZE * 4);

function clientRound(clients: Socket[]): void {
  for (const c of clients) libc.send(c.fd, message, SIZE, MSG_NOSIGNAL);
}

function clientDrain(clients: Socket[]): number {
  let got = 0;
  for (const c of clients) {
    const n = libc.recv(c.fd, clientBuffer, clientBuffer.byteLength, 0);
    if (n > 0) got += n;
  }
  return got;
}

function libraryServer(servers: Socket[], backend: 'epoll' | 'io_uring' = 'epoll'): () => number {
  const buffer = new Uint8Array(64 * 1024);
  if (USE_REACTOR) {
    const reactor = new Reactor({ backend }).unref();
    if (reactor.multiplexer.backend !== backend) throw new Error(`${backend} refused here: the reactor runs ${reactor.multiplexer.backend}`);
    let handled = 0;
    for (const s of servers) {
      reactor.add(s, (event) => {
        const socket = event.target;
        const n = socket.receiveInto(buffer);
        if (n > 0) socket.send(buffer, n);
        handled++;
      });
    }
    return () => {
      handled = 0;
      reactor.drain();
      return handled;
    };
  }
  const mux = new Multiplexer({ backend });
  if (mux.backend !== backend) throw new Error(`${backend} refused here: the multiplexer runs ${mux.backend}`);
  for (const s of servers) mux.add(s);
  return () => {
    let handled = 0;
    for (const event of mux.wait(0)) {
      const socket = event.target as Socket;
      const n = socket.receiveInto(buffer);
      if (n > 0) socket.send(buffer, n);
      handled++;
    }
    return handled;
  };
}

function rawServer(servers: Socket[]): () => number {
  const epfd = libc.epoll_create1(0);
  const control = new Uint8Array(SIZEOF.epoll_event);
  const controlView = new DataView(control.buffer);
  servers.forEach((s, i) => {
    controlView.setUint32(OFFSETOF.epoll_event.events, EPOLLIN, true);
    controlView.setUint32(OFFSETOF.epoll_event.data, i, true);
    libc.epoll_ctl(epfd, EPOLL_CTL_ADD, s.fd, control);
  });
  const events = new Uint8Array(SIZEOF.epoll_event * 256);
  const view = new DataView(events.buffer);
  const buffer = new Uint8Array(64 * 1024);
  return () => {
    const count = libc.epoll_wait(epfd, events, 256, 0);
    for (let i = 0; i < count; i++) {
      const fd = servers[view.getUint32(i * SIZEOF.epoll_event + OFFSETOF.epoll_event.data, true)].fd;
      const n = libc.recv(fd, buffer, buffer.byteLength, 0);
      if (n > 0) libc.send(fd, buffer, n, MSG_NOSIGNAL);
    }
    return count;
  };
}

/**
 * CPU ns per request (user + system time of this process, which other processes on a busy
 * machine disturb far less than wall time) of one round of `requests` requests through `serve`.
 */
function round(clients: Socket[], serve: () => number): number {
  const perRound = clients.length;
  const start = process.cpuUsage();
  for (let done = 0; done < REQUESTS; done += perRound) {
    clientRound(clients);
    for (let handled = 0, spins = 0; handled < perRound && spins < 1000; spins++) handled += serve();
    for (let got = 0, spins = 0; got < perRound * SIZE && spins < 1000; spins++) got += clientDrain(clients);
  }
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / REQUESTS;
}

function setUp(): { clients: Socket[]; servers: Socket[] } {
  const clients: Socket[] = [];
  const servers: Socket[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const [a, b] = Socket.pair();
    clients.push(a);
    servers.push(b);
  }
  return { clients, servers };
}

const lib = setUp();
const raw = setUp();
const uring = BACKEND === 'io_uring' ? setUp() : null;
const serveLib = libraryServer(lib.servers);
const serveRaw = rawServer(raw.servers);
const serveUring = uring === null ? null : libraryServer(uring.servers, 'io_uring');
round(lib.clients, serveLib); // warm-up: JIT every path
round(raw.clients, serveRaw);
if (uring !== null) round(uring.clients, serveUring!);
const libRuns: number[] = [];
const rawRuns: number[] = [];
const uringRuns: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  libRuns.push(round(lib.clients, serveLib));
  rawRuns.push(round(raw.clients, serveRaw));
  if (uring !== null) uringRuns.push(round(uring.clients, serveUring!));
}
const fmt = (v: number) => v.toFixed(0).padStart(6);
const libMed = median(libRuns);
const rawMed = median(rawRuns);
console.log(`hot path, ${PAIRS} pairs, ${REQUESTS} requests x ${ROUNDS} rounds, ${USE_REACTOR ? 'Reactor.drain' : 'Multiplexer.wait(0)'}`);
console.log(`  m-socket   min ${fmt(Math.min(...libRuns))} ns  median ${fmt(libMed)} ns per request`);
if (uring !== null) console.log(`  io_uring   min ${fmt(Math.min(...uringRuns))} ns  median ${fmt(median(uringRuns))} ns per request`);
console.log(`  raw koffi  min ${fmt(Math.min(...rawRuns))} ns  median ${fmt(rawMed)} ns per request`);
console.log(`  library's own cost: min ${fmt(Math.min(...libRuns) - Math.min(...rawRuns))} ns  median ${fmt(libMed - rawMed)} ns per request`);
if (uring !== null) {
  // Each round's io_uring figure against the epoll round run just before it: noise hits both.
  const ratios = uringRuns.map((u, i) => u / libRuns[i]);
  console.log(`  io_uring / epoll per round: median ${median(ratios).toFixed(3)}  min ${Math.min(...ratios).toFixed(3)}  max ${Math.max(...ratios).toFixed(3)}`);
}
for (const s of [...lib.clients, ...lib.servers, ...raw.clients, ...raw.servers, ...(uring?.clients ?? []), ...(uring?.servers ?? [])]) s.destroy();
process.exit(0);
