/**
 * A UDP echo server on several worker threads: each worker owns its own Multiplexer and its own
 * `DatagramSocket` bound to the same host and port with `reusePort: true` (SO_REUSEPORT), and the
 * kernel spreads the datagrams over the sockets by flow (a hash of source and destination address
 * and port: every datagram of one client socket goes to the same worker). Each worker echoes in
 * batches: one recvmmsg brings up to `--batch` datagrams, one sendmmsg answers them from the same
 * memory. Nothing is shared between the workers: each loads its own koffi bindings, opens its own
 * fds and runs its own loop, blocked in `mux.wait(-1)` until a datagram or its `Waker` comes.
 *
 *   node --import tsx examples/udp-workers.ts [--host 127.0.0.1] [--port 0] [--workers 2]
 *                                             [--backend epoll|poll|io_uring] [--batch 64] [--verbose]
 *
 * Contract (test/udp-workers.test.ts relies on it), the same as the other example servers':
 * - the first stdout line is `listening on HOST:PORT` (`[::1]:PORT` for IPv6), printed once every
 *   worker is bound (port 0 lets the first worker's kernel pick one; the others join it); with
 *   --verbose, one line per worker follows (`worker 0 on epoll`);
 * - every datagram goes back, whole, to the address it came from;
 * - bad arguments: a message and the usage on stderr, exit code 2; a failure to bind: exit 1;
 * - SIGINT / SIGTERM: every worker is woken through its `Waker`, sends what it still has queued,
 *   closes its socket and ends; then one line per worker, `worker I echoed N datagrams, M not
 *   echoed` (M: datagrams dropped because the send queue was at its cap), and exit 0.
 *
 * `--backend io_uring` falls back to epoll by itself where the kernel refuses io_uring (the
 * --verbose line says which backend each worker got). How the workers are started under tsx, and
 * why they are stopped with a Waker rather than `terminate()`, is told in examples/workers.ts.
 */
import { pathToFileURL } from 'node:url';
import { isMainThread, parentPort, threadId, Worker, workerData } from 'node:worker_threads';
import { DatagramBatch, DatagramSocket, formatAddress, isIP, Multiplexer, Waker, type BackendName, type InetAddress } from '../lib/index.ts';
import { commandLine } from './cli.ts';

const BACKENDS: readonly BackendName[] = ['epoll', 'poll', 'io_uring'];

/** What the main thread gives each worker (through `workerData`). */
interface WorkerInput {
  role: 'm-socket-udp-echo-worker';
  index: number;
  host: string;
  /** What --port said for the first worker; the port the first one got for the others. */
  port: number;
  backend: BackendName;
  batch: number;
}

/** Messages a worker posts to the main thread. */
type WorkerMessage =
  | {
      type: 'listening'; index: number; address: InetAddress; backend: BackendName; threadId: number;
      /** A duplicate of the worker's waker fd: the main thread's from now on (adopt it with Waker.fromFd at once). */
      waker: number;
    }
  | { type: 'failed'; index: number; message: string }
  | { type: 'done'; index: number; echoed: number; notEchoed: number };

/** How long a stopping worker may take to send what it has queued before it drops the rest. */
const DRAIN_MS = 1000;

// ---- Worker side ----------------------------------------------------------------------------------

/** The worker's whole life: bind, echo until woken to stop, drain, close everything, report. */
function serve(input: WorkerInput): void {
  const port = parentPort!;
  const mux = new Multiplexer({ backend: input.backend });
  const waker = new Waker(); // the main thread wakes it to stop us
  let socket: DatagramSocket<InetAddress>;
  try {
    socket = DatagramSocket.bind({ host: input.host, port: input.port, reusePort: true, socketOptions: { receiveBufferSize: 1 << 20 } });
  } catch (err) {
    waker.close();
    mux.close();
    port.postMessage({ type: 'failed', index: input.index, message: (err as Error).message } satisfies WorkerMessage);
    return;
  }
  // One batch for the life of the worker: the memory every datagram is received into and sent from.
  const batch = new DatagramBatch({ capacity: input.batch, datagramSize: 65536 });
  let echoed = 0;
  let notEchoed = 0;
  try {
    mux.add(waker);
    mux.add(socket);
    port.postMessage({
      type: 'listening', index: input.index, address: socket.localAddress, backend: mux.backend, threadId, waker: waker.share(),
    } satisfies WorkerMessage);
    let stopping = false;
    while (!stopping) {
      for (const event of mux.wait(-1)) {
        if (event.target === waker) {
          stopping = true;
          break;
        }
        // The socket is readable (or its queue drained: the multiplexer flushes it by itself).
        // Read until a batch comes back short, at most 16 batches a turn so the waker is seen.
        for (let round = 0; round < 16; round++) {
          const n = socket.receiveBatch(batch);
          if (n === 0) break;
          // Each datagram back to the address it came from, from the slot it arrived in; what the
          // kernel cannot take now is queued (copies), up to the queue's cap.
          const taken = socket.sendBatch(batch, n);
          echoed += taken;
          notEchoed += n - taken;
          if (n < batch.capacity) break;
        }
      }
    }
    // Send what is queued (close() is graceful), for a bounded time.
    socket.close();
    for (const deadline = Date.now() + DRAIN_MS; socket.state !== 'closed' && Date.now() < deadline;) mux.wait(50);
    notEchoed += socket.queuedDatagrams;
  } finally {
    socket.destroy();
    waker.close(); // the main thread's duplicate stays valid: its wakes are harmless now
    mux.close();
  }
  port.postMessage({ type: 'done', index: input.index, echoed, notEchoed } satisfies WorkerMessage);
}

if (!isMainThread && (workerData as WorkerInput | null)?.role === 'm-socket-udp-echo-worker') serve(workerData as WorkerInput);

// ---- Main side ------------------------------------------------------------------------------------

/**
 * Starts a worker on this file: under `node --import tsx` through tsx's `tsImport` (the loader
 * does not reach a worker's entry point on Node 20; see examples/workers.ts), directly once compiled.
 */
function startWorker(input: WorkerInput): Worker {
  const self = import.meta.url;
  if (!/\.[cm]?ts$/.test(self)) return new Worker(new URL(self), { workerData: input });
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const bootstrap = `import(${tsx}).then((tsx) => tsx.tsImport(${JSON.stringify(self)}, ${JSON.stringify(self)}));`;
  return new Worker(bootstrap, { eval: true, workerData: input });
}

/** One started worker and what it has said so far. */
class WorkerHandle {
  readonly worker: Worker;
  /** Resolves with the address once bound, or with the reason it could not bind. */
  readonly started: Promise<Extract<WorkerMessage, { type: 'listening' | 'failed' }>>;
  readonly exited: Promise<number>;
  done: Extract<WorkerMessage, { type: 'done' }> | null = null;
  /** Our own fd of the worker's waker, adopted as soon as the worker says it is bound. */
  waker: Waker | null = null;

  constructor(input: WorkerInput, onError: (err: Error) => void) {
    this.worker = startWorker(input);
    this.started = new Promise((resolve) => {
      this.worker.on('message', (message: WorkerMessage) => {
        if (message.type === 'listening') {
          this.waker = Waker.fromFd(message.waker); // at once: the number is ours to close now
          resolve(message);
        } else if (message.type === 'failed') resolve(message);
        else this.done = message;
      });
      this.worker.once('exit', (code) => resolve({ type: 'failed', index: input.index, message: `worker exited (code ${code}) before binding` }));
    });
    this.worker.on('error', onError);
    this.exited = new Promise((resolve) => this.worker.once('exit', resolve));
  }

  /** Wakes the worker out of its wait: it stops. Harmless once it has ended. */
  stop(): void {
    this.waker?.wake();
  }

  /** Closes our waker fd (after the worker has ended). */
  release(): void {
    this.waker?.close();
    this.waker = null;
  }
}

const USAGE = `usage: udp-workers [--host IP] [--port N] [--workers N] [--backend epoll|poll|io_uring] [--batch N] [--verbose]
  --host IP            IP address to bind (default 127.0.0.1; ::1 or :: for IPv6)
  --port N             UDP port, 0..65535 (default 0: the kernel picks a free one, which every worker shares)
  --workers N          worker threads, each with its own socket on the port, 1..64 (default 2)
  --backend NAME       each worker's multiplexer backend: epoll (default), poll or io_uring
  --batch N            datagrams per system call, 1..1024 (default 64)
  --verbose            say which backend each worker runs on
`;

async function main(): Promise<void> {
  const cli = commandLine('udp-workers', USAGE, {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    workers: { type: 'string', default: '2' },
    backend: { type: 'string', default: 'epoll' },
    batch: { type: 'string', default: '64' },
    verbose: { type: 'boolean', default: false },
  });
  const { values } = cli;
  const host = values.host;
  if (isIP(host) === 0) cli.usageError(`--host must be an IP address, not ${JSON.stringify(host)}`);
  const port = cli.integer('port', values.port, 0, 65535);
  const workers = cli.integer('workers', values.workers, 1, 64);
  const batch = cli.integer('batch', values.batch, 1, 1024);
  const backend = BACKENDS.find((b) => b === values.backend);
  if (backend === undefined) cli.usageError(`--backend must be epoll, poll or io_uring, not ${JSON.stringify(values.backend)}`);

  const handles: WorkerHandle[] = [];
  let stopping: Promise<void> | null = null;
  /** Wakes every worker, waits for each to end (bounded), prints what each did, exits. */
  const stopAll = (code: number): Promise<void> =>
    (stopping ??= (async () => {
      for (const h of handles) h.stop();
      await Promise.all(
        handles.map(async (h) => {
          // A worker that never reached its wait (it failed to bind) ends by itself; terminate()
          // is for one that does not end in time (it cannot interrupt a blocked wait).
          const timer = setTimeout(() => void h.worker.terminate(), DRAIN_MS + 5000);
          await h.exited;
          clearTimeout(timer);
        }),
      );
      for (const h of handles) h.release();
      if (code === 0) {
        handles.forEach((h, i) => process.stdout.write(`worker ${i} echoed ${h.done?.echoed ?? 0} datagrams, ${h.done?.notEchoed ?? 0} not echoed\n`));
        if (handles.some((h) => h.done === null)) code = 1;
      }
      process.exit(code);
    })());
  const onError = (err: Error) => {
    process.stderr.write(`udp-workers: a worker failed: ${err.stack ?? err.message}\n`);
    void stopAll(1);
  };
  const input = (index: number, p: number): WorkerInput => ({ role: 'm-socket-udp-echo-worker', index, host, port: p, backend: backend!, batch });

  // Worker 0 binds --port (0: the kernel picks one) and tells us the port; the others join it.
  handles.push(new WorkerHandle(input(0, port), onError));
  const first = await handles[0].started;
  if (first.type === 'failed') {
    process.stderr.write(`udp-workers: cannot bind ${host} port ${port}: ${first.message}\n`);
    return stopAll(1);
  }
  for (let i = 1; i < workers; i++) handles.push(new WorkerHandle(input(i, first.address.port), onError));
  const all = await Promise.all(handles.map((h) => h.started));
  const failed = all.find((m) => m.type === 'failed');
  if (failed !== undefined) {
    process.stderr.write(`udp-workers: worker ${failed.index} cannot bind ${host} port ${first.address.port}: ${failed.message}\n`);
    return stopAll(1);
  }
  // Signal handlers first, then the line: a tool may signal as soon as it reads it.
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));
  process.stdout.write(`listening on ${formatAddress(first.address)}\n`);
  if (values.verbose) for (const m of all) if (m.type === 'listening') process.stdout.write(`worker ${m.index} on ${m.backend} (thread ${m.threadId})\n`);
}

if (isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`udp-workers: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
