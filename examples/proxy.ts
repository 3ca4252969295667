/**
 * A TCP proxy on m-socket: every connection accepted on --host/--port is joined to a new
 * connection to --target, both ways, with backpressure, half-close and resets carried across
 * (`pipeSockets`).
 *
 *   node --import tsx examples/proxy.ts --target HOST:PORT [--host 127.0.0.1] [--port 0] [--verbose]
 *
 * Contract (test/proxy.test.ts relies on it), the same as examples/echo-server.ts:
 * - the first stdout line is `listening on HOST:PORT`; nothing else goes to stdout unless --verbose;
 * - bad arguments (a --target that is not HOST:PORT) print a usage message on stderr, exit code 2;
 * - SIGINT / SIGTERM: stop accepting, let each connection deliver what is queued (`shutdownServer`),
 *   exit 0 when nothing is left, or after 2 s at the latest.
 */
import { parseHostPort, pipeSockets, Reactor, resolve, shutdownServer, Socket, formatAddress, type SocketPipe } from '../lib/index.ts';
import { serverCommandLine } from './cli.ts';

const SHUTDOWN_GRACE_MS = 2000;

const cli = serverCommandLine('proxy', {
  options: { target: { type: 'string' } },
  help: [['--target HOST:PORT', 'where to forward each connection (required): 10.0.0.1:80, [::1]:80, name:80']],
});
const { backend, ringSend, log, listenHere, announce } = cli;
if (cli.values.target === undefined) cli.usageError('--target HOST:PORT is required');
let target: ReturnType<typeof parseHostPort>;
try {
  target = parseHostPort(cli.values.target!, '--target');
} catch (err) {
  cli.usageError((err as Error).message);
}

// A name is resolved once, at start (Socket.connect takes IP literals only).
const targetHost = target!.family !== 0 ? target!.host : (await resolve(target!.host))[0].address;
const targetPort = target!.port;

const listener = listenHere();
const reactor = new Reactor({ backend, ringSend });
const pipes = new Set<SocketPipe>();
let served = 0;

reactor.add(listener, () => {
  for (let client = listener.accept(); client !== null; client = listener.accept()) {
    const id = ++served;
    const from = client.remoteAddress === null ? '?' : formatAddress(client.remoteAddress);
    let upstream: Socket;
    try {
      upstream = Socket.connect({ host: targetHost, port: targetPort });
    } catch (err) {
      log(`- #${id} from ${from}: cannot connect to the target: ${(err as Error).message}`);
      client.destroy();
      continue;
    }
    const pipe = pipeSockets(client, upstream, reactor);
    pipes.add(pipe);
    log(`+ #${id} from ${from} (${pipes.size} open)`);
    void pipe.finished.then((result) => {
      pipes.delete(pipe);
      const how = result.error === null ? 'closed' : `failed: ${result.error.message}`;
      log(`- #${id} ${how}: ${result.aToB} bytes up, ${result.bToA} down (${pipes.size} open)`);
    });
  }
});
announce(listener, stop);

let stopping = false;

async function stop(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`proxy: ${signal}: closing ${pipes.size} open connections (${served} served)\n`);
  const sockets = [...pipes].flatMap((p) => [p.a, p.b]);
  const result = await shutdownServer(listener, sockets, reactor, { timeoutMs: SHUTDOWN_GRACE_MS });
  process.stderr.write(`proxy: stopped: sockets ${result.closed} closed, ${result.failed} failed, ${result.destroyed} destroyed at the deadline\n`);
  reactor.close();
  process.exit(0);
}
