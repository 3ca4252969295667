/**
 * Socket helpers shared by the tests: connected pairs, bounded event loops, byte patterns.
 * Every loop here is bounded in time; a loop that runs out throws, naming what it waited for.
 */
import assert from 'node:assert/strict';
import { Listener, Multiplexer, Socket, type MultiplexerEvent, type MultiplexerTarget } from '../../lib/index.ts';

/** A connected TCP pair on 127.0.0.1 and the listener that made it. */
export interface Pair {
  client: Socket;
  server: Socket;
  listener: Listener;
  /** Destroys all three (harmless if some are closed already). */
  close(): void;
}

/**
 * Runs `mux.wait(10)` and hands each event to `onEvent` until `done()` is true; throws after
 * `timeoutMs`. Returns the number of events seen.
 */
export function pumpUntil<D>(
  mux: Multiplexer<D>,
  done: () => boolean,
  onEvent: (event: MultiplexerEvent<MultiplexerTarget, D>) => void = () => {},
  what = 'the condition',
  timeoutMs = 5000,
): number {
  const deadline = performance.now() + timeoutMs;
  let seen = 0;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    for (const event of mux.wait(10)) {
      seen++;
      onEvent(event);
    }
  }
  return seen;
}

/** Makes a connected pair; the client is `'open'` when this returns. */
export function connectedPair(options: { sendQueueLimit?: number } = {}): Pair {
  const listener = Listener.listen({ host: '127.0.0.1', port: 0, socket: options });
  const port = listener.port;
  const client = Socket.connect({ host: '127.0.0.1', port, ...options });
  const mux = new Multiplexer();
  try {
    mux.add(client, 0);
    mux.add(listener);
    let server: Socket | null = null;
    pumpUntil(mux, () => server !== null && client.state === 'open', (event) => {
      if (event.target === listener) server ??= listener.accept();
    }, 'a connection');
    mux.remove(client);
    assert.ok(server !== null);
    const s: Socket = server;
    return {
      client,
      server: s,
      listener,
      close() {
        client.destroy();
        s.destroy();
        listener.close();
      },
    };
  } finally {
    mux.close();
  }
}

/** `length` bytes of a pattern that shows reordering, loss or duplication (not all one value). */
export function pattern(length: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** Reads everything from `socket` until EOF, pumping `mux` (socket must be in it). */
export function readToEnd(mux: Multiplexer, socket: Socket, timeoutMs = 5000): Uint8Array {
  const chunks: Uint8Array[] = [];
  let ended = false;
  const buffer = new Uint8Array(64 * 1024);
  const drain = () => {
    for (;;) {
      const n = socket.receiveInto(buffer);
      if (n > 0) chunks.push(buffer.slice(0, n));
      else {
        ended = n < 0;
        return;
      }
    }
  };
  drain();
  pumpUntil(mux, () => ended, (event) => {
    if (event.target === socket && (event.readable || event.hangup)) drain();
  }, 'EOF', timeoutMs);
  return Buffer.concat(chunks);
}
