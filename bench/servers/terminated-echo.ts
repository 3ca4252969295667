/**
 * The worker of bench/worker-terminate.ts: a TCP echo server that is terminated while it serves.
 * `workerData`: `{ backend, ringAccept, owner }`; owner `loop` blocks in `mux.wait(50)` (a
 * worker's own loop), `reactor` serves from a Reactor on the worker's event loop. It posts its
 * port, then serves until it is stopped.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Listener, Multiplexer, Reactor, Socket, type MultiplexerEvent } from '../../lib/index.ts';

const { backend, ringAccept, owner } = workerData as { backend: 'epoll' | 'io_uring'; ringAccept: boolean; owner: 'loop' | 'reactor' };
const listener = Listener.listen({ host: '127.0.0.1', port: 0, backlog: 512 });
const buffer = new Uint8Array(4096);

function echo(socket: Socket): void {
  const n = socket.receiveInto(buffer);
  if (n < 0) socket.close();
  else if (n > 0) socket.send(buffer.subarray(0, n));
}

if (owner === 'reactor') {
  const reactor = new Reactor({ backend, ringAccept });
  const onSocket = (event: MultiplexerEvent<Socket>): void => echo(event.target);
  reactor.add(listener, () => {
    for (let socket = listener.accept(); socket !== null; socket = listener.accept()) reactor.add(socket, onSocket);
  });
  parentPort!.postMessage({ port: listener.port, ringAccept: reactor.multiplexer.ringAccept });
} else {
  const mux = new Multiplexer({ backend, ringAccept });
  mux.add(listener);
  parentPort!.postMessage({ port: listener.port, ringAccept: mux.ringAccept });
  for (;;) {
    for (const event of mux.wait(50)) {
      if (event.target === listener) {
        for (let socket = listener.accept(); socket !== null; socket = listener.accept()) mux.add(socket);
      } else if (event.target instanceof Socket) echo(event.target);
    }
  }
}
