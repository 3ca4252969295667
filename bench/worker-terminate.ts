/**
 * What `worker.terminate()` leaves open (README, "Worker threads" and "Completion-based accept"):
 * a worker serving TCP echo (bench/servers/terminated-echo.ts) is terminated 100-300 ms into a
 * flood of `--clients` client loops (default 16; each connects, sends a byte, waits for the echo
 * and closes), then the process's sockets are counted against the count before the worker: any
 * left is an fd of the worker's that nothing will close (its client sees CLOSE-WAIT forever).
 * Each configuration runs `--rounds` workers, one after another.
 *
 *   node --import tsx bench/worker-terminate.ts [--rounds N] [--clients N] [--only epoll-loop,io_uring-accept-loop,...]
 *
 * Prints one line per configuration: workers, sockets left, workers that left some, echoes.
 * Not a timed test: where the windows are, and how often a flood hits them, depends on the machine.
 */
import net from 'node:net';
import { readdirSync, readlinkSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

interface Config {
  name: string;
  backend: 'epoll' | 'io_uring';
  ringAccept: boolean;
  owner: 'loop' | 'reactor';
}
const CONFIGS: Config[] = [
  { name: 'epoll-loop', backend: 'epoll', ringAccept: false, owner: 'loop' },
  { name: 'epoll-reactor', backend: 'epoll', ringAccept: false, owner: 'reactor' },
  { name: 'io_uring-loop', backend: 'io_uring', ringAccept: false, owner: 'loop' },
  { name: 'io_uring-accept-loop', backend: 'io_uring', ringAccept: true, owner: 'loop' },
  { name: 'io_uring-accept-reactor', backend: 'io_uring', ringAccept: true, owner: 'reactor' },
];

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '60' }, clients: { type: 'string', default: '16' }, only: { type: 'string' } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 1000) throw new RangeError(`--rounds: an integer from 1 to 1000, not ${values.rounds}`);
const clients = Number(values.clients);
if (!Number.isInteger(clients) || clients < 1 || clients > 256) throw new RangeError(`--clients: an integer from 1 to 256, not ${values.clients}`);
const only = values.only?.split(',');
const unknown = only?.filter((name) => !CONFIGS.some((c) => c.name === name)) ?? [];
if (unknown.length > 0) throw new RangeError(`--only: unknown configuration ${unknown.join(', ')} (known: ${CONFIGS.map((c) => c.name).join(', ')})`);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
function openSockets(): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) count++;
    } catch {
      // closed while we looked
    }
  }
  return count;
}
function startWorker(config: Config): Worker {
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const file = JSON.stringify(new URL('./servers/terminated-echo.ts', import.meta.url).href);
  const bootstrap = `import(${tsx}).then((tsx) => tsx.tsImport(${file}, ${JSON.stringify(import.meta.url)}));`;
  return new Worker(bootstrap, { eval: true, workerData: { backend: config.backend, ringAccept: config.ringAccept, owner: config.owner } });
}

/** One worker: flooded, terminated, then the sockets it left. */
async function round(config: Config): Promise<{ left: number; echoes: number; ringAccept: boolean }> {
  const before = openSockets();
  const worker = startWorker(config);
  const [hello] = await new Promise<[{ port: number; ringAccept: boolean }]>((resolve, reject) => {
    worker.once('message', (m) => resolve([m]));
    worker.once('error', reject);
  });
  let stopping = false;
  let echoes = 0;
  const open = new Set<net.Socket>();
  const clientLoop = async (): Promise<void> => {
    while (!stopping) {
      await new Promise<void>((resolve) => {
        const c = net.connect({ host: '127.0.0.1', port: hello.port });
        open.add(c);
        const timer = setTimeout(() => c.destroy(), 300); // bounded: a connection the ended worker never answers
        c.on('error', () => {});
        c.on('close', () => {
          clearTimeout(timer);
          open.delete(c);
          resolve();
        });
        c.on('connect', () => c.write('x'));
        c.on('data', () => {
          echoes++;
          c.end();
        });
      });
    }
  };
  const loops = Array.from({ length: clients }, clientLoop);
  await sleep(100 + Math.random() * 200);
  await worker.terminate();
  stopping = true;
  for (const c of open) c.destroy();
  await Promise.all(loops);
  await sleep(300); // the ring's background teardown, closes of destroyed clients
  return { left: openSockets() - before, echoes, ringAccept: hello.ringAccept };
}

for (const config of CONFIGS.filter((c) => only === undefined || only.includes(c.name))) {
  let left = 0;
  let leaky = 0;
  let echoes = 0;
  let ringAccept = config.ringAccept;
  for (let i = 0; i < rounds; i++) {
    const r = await round(config);
    if (r.left > 0) {
      left += r.left;
      leaky++;
    }
    echoes += r.echoes;
    ringAccept = r.ringAccept;
  }
  const note = config.ringAccept && !ringAccept ? ' (ringAccept refused here: accept4)' : '';
  console.log(`${config.name.padEnd(24)} workers ${rounds}, clients ${clients}, sockets left ${left} (by ${leaky} workers), echoes ${echoes}${note}`);
}
