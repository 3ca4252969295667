/**
 * m-socket echo server for the throughput and scale benchmarks, on the public API only.
 *
 * Usage: node --import tsx bench/servers/msocket-echo.ts [reactor|rounds1|busy|lib-busy|loop] [LIFETIME_S=900] [SPIN_US=200]
 *          [--backend epoll|io_uring] [--ring-send] [--no-ring-accept]
 * Prints "PORT <n>" once listening on 127.0.0.1 (port picked by the kernel). `--backend` picks the
 * backend (default epoll), `--ring-send` io_uring's `ringSend` (sends through the ring),
 * `--no-ring-accept` turns io_uring's multishot accept off (`ringAccept: false`); a backend the kernel refuses is not measured as a silent epoll: the
 * server prints "UNSUPPORTED <why>" and exits with status 3 (the bench skips it).
 *
 * - `reactor`: the Reactor drives the multiplexer from Node's event loop (libuv watches the epoll
 *   fd). `rounds1` is the same with `new Reactor({ maxRounds: 1 })`. Each readable event: one
 *   `receiveInto` into ONE buffer shared by every connection, then `send(buffer, n)`. When the
 *   socket's send queue reaches its cap, reading pauses until the multiplexer reports it drained.
 * - `busy`: BENCH-ONLY BUSY-POLL LOOP, NOT A LIBRARY FEATURE. The Reactor has no busy-poll option
 *   yet; this emulates the one issue 6 asks for: after a wakeup, keep calling `reactor.drain()`
 *   (which is `multiplexer.wait(0)` + dispatch) for up to SPIN_US microseconds after the last
 *   event before going back to sleep in libuv. It burns a core while traffic flows.
 * - `lib-busy`: the library's own busy-poll option (`new Reactor({ busyPollMs })`), when this
 *   version of the library has it; otherwise prints "UNSUPPORTED" and exits with status 3.
 * - `loop`: no Reactor: `new Multiplexer({ backend })` and a blocking `wait` on the main thread,
 *   the same echo handler: what a worker's own loop does (bench/io-uring.ts). It waits with no
 *   timeout (`wait(-1)`) while a connection is open, and for at most 1 s while none is, to check
 *   its lifetime (signals do not cut a wait short; the bench kills it with SIGKILL).
 */
import { END_OF_STREAM, Interest, Listener, Multiplexer, Reactor, type MultiplexerEvent, type ReactorOptions, type Socket } from '../../lib/index.ts';

const ringSendAt = process.argv.indexOf('--ring-send');
const ringSend = ringSendAt >= 0;
if (ringSend) process.argv.splice(ringSendAt, 1);
const noRingAcceptAt = process.argv.indexOf('--no-ring-accept');
const ringAccept = noRingAcceptAt < 0;
if (!ringAccept) process.argv.splice(noRingAcceptAt, 1);
const backendAt = process.argv.indexOf('--backend');
const backend = backendAt < 0 ? 'epoll' : process.argv[backendAt + 1];
if (backend !== 'epoll' && backend !== 'io_uring') throw new Error(`--backend epoll|io_uring, not ${backend}`);
const positional = backendAt < 0 ? process.argv.slice(2) : [...process.argv.slice(2, backendAt), ...process.argv.slice(backendAt + 2)];
const mode = positional[0] ?? 'reactor';
const lifetimeS = Number(positional[1] ?? 900);
const spinUs = Number(positional[2] ?? 200);
if (!['reactor', 'rounds1', 'busy', 'lib-busy', 'loop'].includes(mode)) throw new Error(`unknown mode ${mode}`);

/** Whether this Reactor knows `busyPollMs`: a version that does rejects a negative value. */
function hasBusyPollOption(): boolean {
  try {
    new Reactor({ busyPollMs: -1 } as ReactorOptions).close();
    return false;
  } catch {
    return true;
  }
}
if (mode === 'lib-busy' && !hasBusyPollOption()) {
  process.stdout.write('UNSUPPORTED\n');
  process.exit(3);
}
/** Loop mode's multiplexer (null on the Reactor). */
const own = mode === 'loop' ? new Multiplexer<null>({ backend, ringSend, ringAccept }) : null;
const reactor =
  own === null
    ? new Reactor({
        backend,
        ringSend,
        ringAccept,
        ...(mode === 'rounds1' ? { maxRounds: 1 } : mode === 'lib-busy' ? ({ busyPollMs: spinUs / 1000 } as ReactorOptions) : {}),
      })
    : null;
const running = own?.backend ?? reactor!.multiplexer.backend;
if (running !== backend) {
  process.stdout.write(`UNSUPPORTED ${backend} refused here: the multiplexer runs ${running}\n`);
  process.exit(3);
}
if (ringSend && !(own?.ringSend ?? reactor!.multiplexer.ringSend)) {
  // A Reactor's ring has no DEFER_TASKRUN where the kernel has none, or signals its eventfd late (RingWakeup.signalsAtOnce).
  process.stdout.write(`UNSUPPORTED ringSend: ${own === null ? 'the Reactor\'s ring has no DEFER_TASKRUN (none here, or its eventfd comes late)' : 'this kernel has no DEFER_TASKRUN'}\n`);
  process.exit(3);
}
/** Where the handler changes a socket's interest: the Reactor, or loop mode's multiplexer. */
const watcher: { modify(target: Socket, interest: number): void } = own ?? reactor!;
const buffer = new Uint8Array(64 * 1024);
const listener = Listener.listen({ host: '127.0.0.1', port: 0, noDelay: true, backlog: 511 });

/** Sockets not being read because their send queue is full (backpressure). */
const paused = new Set<Socket>();

function onSocket(event: MultiplexerEvent<Socket>): void {
  const socket = event.target;
  if (event.error !== null) {
    paused.delete(socket);
    socket.destroy();
    return;
  }
  if (paused.size > 0 && paused.has(socket)) {
    if (!event.writable || socket.sendQueueFull) return;
    paused.delete(socket);
    watcher.modify(socket, Interest.READABLE);
  }
  if (!event.readable && !event.hangup && event.error === null) return;
  const n = socket.receiveInto(buffer);
  if (n === 0) return;
  if (n === END_OF_STREAM) {
    socket.destroy();
    return;
  }
  // Read only while the queue is below its (soft) cap: the socket takes every byte, and what
  // the kernel cannot take yet is queued and flushed by the multiplexer.
  const status = socket.send(buffer, n);
  if (status === 'closed') socket.destroy();
  else if (socket.sendQueueFull) {
    paused.add(socket);
    watcher.modify(socket, Interest.NONE); // until the queue drains
  }
}

if (reactor !== null) {
  reactor.add(listener, () => {
    for (let socket = listener.accept(); socket !== null; socket = listener.accept()) reactor.add(socket, onSocket);
  });
}

if (mode === 'busy' && reactor !== null) {
  // BENCH-ONLY: bounded spin on wait(0) after each wakeup (see the header).
  let spinning = false;
  const spin = (): void => {
    const budget = spinUs * 1e-3;
    let last = performance.now();
    for (;;) {
      const handled = reactor.drain();
      const now = performance.now();
      if (handled > 0) last = now;
      else if (now - last > budget) break;
    }
    spinning = false;
  };
  const wrapped = onSocket;
  const onSocketBusy = (event: MultiplexerEvent<Socket>): void => {
    wrapped(event);
    if (!spinning) {
      spinning = true;
      setImmediate(spin);
    }
  };
  reactor.modify(listener, Interest.READABLE, () => {
    for (let socket = listener.accept(); socket !== null; socket = listener.accept()) reactor.add(socket, onSocketBusy);
  });
}

// SIGUSR2: collect garbage (with --expose-gc) and report memory, for the memory-per-connection bench.
// (Not in loop mode: no JS signal handler can run there, and a handled SIGTERM would not end it.)
if (own === null) process.on('SIGUSR2', () => {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  process.stdout.write(`MEM rss=${m.rss} heapUsed=${m.heapUsed} external=${m.external} arrayBuffers=${m.arrayBuffers}\n`);
});
// SIGTERM exits normally so that `node --cpu-prof` writes its profile (bench --profile).
if (own === null) process.on('SIGTERM', () => process.exit(0));
setTimeout(() => process.exit(0), lifetimeS * 1000).unref();
process.stdout.write(`PORT ${listener.port}\n`);

if (own !== null) {
  // Loop mode: this thread is the loop (Node's event loop never runs again: no timer, no signal
  // handler; the lifetime is checked here).
  own.add(listener, Interest.READABLE, null);
  const end = performance.now() + lifetimeS * 1000;
  let open = 0;
  for (;;) {
    const events = own.wait(open > 0 ? -1 : 1000);
    for (const event of events) {
      if (event.target === listener) {
        for (let socket = listener.accept(); socket !== null; socket = listener.accept()) {
          own.add(socket, Interest.READABLE, null);
          open++;
        }
      } else {
        const socket = event.target as Socket;
        onSocket(event as MultiplexerEvent<Socket>);
        if (socket.state === 'closed') open--;
      }
    }
    if (open === 0 && performance.now() > end) process.exit(0);
  }
}
