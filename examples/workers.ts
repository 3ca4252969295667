/**
 * Several worker threads serve one TCP port together: each worker owns its own Multiplexer and
 * its own Listener bound to the same port with `reusePort: true` (SO_REUSEPORT), and the kernel
 * spreads incoming connections across the listeners. Nothing is shared between the workers: each
 * loads its own koffi bindings, opens its own fds and runs its own loop.
 *
 *   node --import tsx examples/workers.ts [--workers 3] [--connections 60] [--backend epoll|poll]
 *
 * The main thread starts the workers, connects `--connections` node:net clients, echoes a line
 * through each, stops the workers and prints which worker served how many connections:
 *
 *   worker 0 served 19 connections
 *   worker 1 served 22 connections
 *   worker 2 served 19 connections
 *
 * ## Why the workers block, and how they are stopped
 * A worker that only serves sockets has no other work, so it runs the simplest loop there is:
 * `mux.wait(-1)` blocks the worker's thread (never the main thread) until something is ready.
 * While it blocks, the worker cannot process messages (`postMessage` to it would wait), and
 * `worker.terminate()` cannot interrupt it either. So each worker watches a `Waker` and sends the
 * main thread a duplicate of its fd (`waker.share()`), which the main thread adopts at once
 * (`Waker.fromFd`); to stop a worker, the main thread wakes it: its wait returns an event for the
 * waker at once, and it closes everything and ends. No timeout, no polling.
 *
 * ## Starting a worker on a .ts file
 * Under `node --import tsx`, `new Worker('./file.ts')` fails with `Unknown file extension ".ts"`:
 * see `startWorker` below for the two-line bootstrap.
 *
 * `runWorkers` is exported so that test/workers.test.ts drives the very same code in-process.
 */
import { connect } from 'node:net';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, threadId, Worker, workerData } from 'node:worker_threads';
import { Listener, Multiplexer, Socket, Waker, type BackendName } from '../lib/index.ts';

/** What the main thread gives each worker (through `workerData`). */
interface WorkerInput {
  role: 'm-socket-echo-worker';
  index: number;
  host: string;
  /** 0 for the first worker (it picks the port), then the port the first one got. */
  port: number;
  backend: BackendName;
}

/** Messages a worker posts to the main thread. */
type WorkerMessage =
  | {
      type: 'listening'; index: number; port: number; threadId: number; listenerFd: number; multiplexerFd: number;
      /** A duplicate of the worker's waker fd: the main thread's from now on (adopt it with Waker.fromFd at once). */
      waker: number;
    }
  | { type: 'done'; index: number; served: number; bytes: number };

/** What one worker reports once it has stopped. */
export interface WorkerReport {
  index: number;
  threadId: number;
  /** Its own listener's fd and multiplexer's fd (-1 for poll): different in every worker. */
  listenerFd: number;
  multiplexerFd: number;
  /** Connections it accepted. */
  served: number;
  /** Bytes it echoed. */
  bytes: number;
  exitCode: number;
}

/** Options of {@link runWorkers}. */
export interface RunOptions {
  workers?: number;
  connections?: number;
  host?: string;
  backend?: BackendName;
}

/** How long the main thread waits for any one step (workers listening, echoes, exits). */
const STEP_TIMEOUT_MS = 15_000;

// ---- Worker side ----------------------------------------------------------------------------------

/** The worker's whole life: listen, serve until woken to stop, close everything, report. */
function serve(input: WorkerInput): void {
  const port = parentPort!;
  const mux = new Multiplexer({ backend: input.backend });
  const waker = new Waker(); // the main thread wakes it to stop us
  const listener = Listener.listen({ host: input.host, port: input.port, reusePort: true });
  const connections = new Set<Socket>();
  const buffer = new Uint8Array(16 * 1024);
  let served = 0;
  let bytes = 0;
  try {
    mux.add(waker);
    mux.add(listener);
    const hello: WorkerMessage = {
      type: 'listening', index: input.index, port: listener.port, threadId, listenerFd: listener.fd, multiplexerFd: mux.fd,
      waker: waker.share(),
    };
    port.postMessage(hello);
    let stopping = false;
    while (!stopping) {
      for (const event of mux.wait(-1)) {
        if (event.target === waker) {
          stopping = true;
          break;
        }
        if (event.target === listener) {
          for (let socket = listener.accept(); socket !== null; socket = listener.accept()) {
            served++;
            connections.add(socket);
            mux.add(socket);
          }
          continue;
        }
        // instanceof tells the targets apart and narrows the type: no cast.
        const socket = event.target;
        if (!(socket instanceof Socket) || socket.state !== 'open') continue;
        // One receive and one send per event: level-triggered, what stays unread is reported
        // again; and an accepted socket is not reported readable while its send queue is full
        // (pauseReadingWhenFull), so a slow reader at the other end slows us down and send never
        // answers 'not-sent'.
        const n = socket.receiveInto(buffer);
        if (n > 0) {
          bytes += n;
          socket.send(buffer, n);
        } else if (n < 0) {
          connections.delete(socket);
          socket.close(); // after the echo drains; the multiplexer finishes it
        }
      }
    }
  } finally {
    for (const socket of connections) socket.destroy();
    listener.close();
    waker.close(); // the main thread's duplicate stays valid: its wakes are harmless now
    mux.close();
  }
  const done: WorkerMessage = { type: 'done', index: input.index, served, bytes };
  port.postMessage(done);
}

if (!isMainThread && (workerData as WorkerInput | null)?.role === 'm-socket-echo-worker') serve(workerData as WorkerInput);

// ---- Main side ------------------------------------------------------------------------------------

/** Rejects after `ms` with a message naming what was awaited; the timer does not hold the process. */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Starts a worker on this file. Run as TypeScript (`node --import tsx`), the worker cannot just
 * be given this file: on Node 20 the `--import tsx` loader does not reach a worker's entry point,
 * not even through the Worker's `execArgv` (nodejs/node#47747, tsx#354), and tsx registers its
 * hooks on the main thread only. So a two-line bootstrap loads the file with tsx's `tsImport`,
 * which compiles it and everything it imports. Compiled to JavaScript, the file starts directly.
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
  readonly listening: Promise<Extract<WorkerMessage, { type: 'listening' }>>;
  readonly exited: Promise<number>;
  done: Extract<WorkerMessage, { type: 'done' }> | null = null;
  /** Our own fd of the worker's waker, adopted as soon as the worker says it listens. */
  waker: Waker | null = null;

  constructor(input: WorkerInput) {
    // The worker runs this very file and loads its own copy of the library and of koffi.
    this.worker = startWorker(input);
    this.listening = new Promise((resolve, reject) => {
      this.worker.on('message', (message: WorkerMessage) => {
        if (message.type === 'listening') {
          this.waker = Waker.fromFd(message.waker); // at once: the number is ours to close now
          resolve(message);
        } else this.done = message;
      });
      this.worker.once('error', reject);
      this.worker.once('exit', (code) => reject(new Error(`worker ${input.index} exited (code ${code}) before listening`)));
    });
    this.exited = new Promise((resolve) => this.worker.once('exit', resolve));
    // An error also ends in 'exit' with code 1; keep it from being an unhandled rejection here.
    this.listening.catch(() => {});
  }

  /** Wakes the worker out of its wait: it stops. Harmless once it has ended. */
  stop(): void {
    this.waker?.wake();
  }

  /** Closes our waker fd (after the worker has ended, or when giving up on it). */
  release(): void {
    this.waker?.close();
    this.waker = null;
  }
}

/** Connects, sends one line, reads it back whole, closes. Resolves with the echoed text. */
async function echoOnce(host: string, port: number, line: string): Promise<string> {
  const socket = connect({ host, port });
  try {
    await once(socket, 'connect');
    socket.end(line);
    let echoed = '';
    socket.setEncoding('utf8');
    for await (const chunk of socket) echoed += chunk as string;
    return echoed;
  } finally {
    socket.destroy();
  }
}

/**
 * Starts `workers` workers on one port, echoes through `connections` connections (10 at a time),
 * stops the workers and reports what each did. Every worker is stopped and awaited, whatever
 * fails.
 */
export async function runWorkers(options: RunOptions = {}): Promise<WorkerReport[]> {
  const count = options.workers ?? 3;
  const connections = options.connections ?? 60;
  const host = options.host ?? '127.0.0.1';
  const backend = options.backend ?? 'epoll';
  const handles: WorkerHandle[] = [];
  try {
    // Worker 0 binds port 0 and tells us the port; the others join it.
    const input = (index: number, port: number): WorkerInput => ({ role: 'm-socket-echo-worker', index, host, port, backend });
    handles.push(new WorkerHandle(input(0, 0)));
    const first = await withTimeout(handles[0].listening, STEP_TIMEOUT_MS, 'worker 0 to listen');
    for (let i = 1; i < count; i++) handles.push(new WorkerHandle(input(i, first.port)));
    const hellos = await withTimeout(Promise.all(handles.map((h) => h.listening)), STEP_TIMEOUT_MS, 'every worker to listen');

    // Only now that every listener is bound can the kernel spread connections over all of them.
    const batch = 10;
    for (let start = 0; start < connections; start += batch) {
      const lines = Array.from({ length: Math.min(batch, connections - start) }, (_, i) => `hello ${start + i}\n`);
      const echoes = await withTimeout(Promise.all(lines.map((line) => echoOnce(host, first.port, line))), STEP_TIMEOUT_MS, 'echoes');
      echoes.forEach((echo, i) => {
        if (echo !== lines[i]) throw new Error(`connection ${start + i}: sent ${JSON.stringify(lines[i])}, got back ${JSON.stringify(echo)}`);
      });
    }

    for (const h of handles) h.stop();
    const codes = await withTimeout(Promise.all(handles.map((h) => h.exited)), STEP_TIMEOUT_MS, 'the workers to exit');
    return hellos.map((hello, i) => ({
      index: hello.index,
      threadId: hello.threadId,
      listenerFd: hello.listenerFd,
      multiplexerFd: hello.multiplexerFd,
      served: handles[i].done?.served ?? -1,
      bytes: handles[i].done?.bytes ?? -1,
      exitCode: codes[i],
    }));
  } finally {
    // On failure: stop whatever runs, and make sure no worker outlives us. A worker that never
    // said it listens never reached its wait, so terminate() can stop it.
    for (const h of handles) h.stop();
    await Promise.all(handles.map((h) => withTimeout(h.exited, STEP_TIMEOUT_MS, 'a worker to exit').catch(() => h.worker.terminate())));
    for (const h of handles) h.release();
  }
}

// ---- Command line ----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      workers: { type: 'string', default: '3' },
      connections: { type: 'string', default: '60' },
      backend: { type: 'string', default: 'epoll' },
    },
    strict: true,
  });
  const workers = Number(values.workers);
  const connections = Number(values.connections);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64 || !Number.isInteger(connections) || connections < 1 || connections > 10_000 ||
    (values.backend !== 'epoll' && values.backend !== 'poll')) {
    process.stderr.write('usage: workers [--workers 1..64] [--connections 1..10000] [--backend epoll|poll]\n');
    process.exit(2);
  }
  const reports = await runWorkers({ workers, connections, backend: values.backend });
  for (const r of reports) process.stdout.write(`worker ${r.index} served ${r.served} connections\n`);
  if (reports.some((r) => r.exitCode !== 0)) process.exitCode = 1;
}

if (isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`workers: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
