/**
 * shutdownServer: a server's graceful shutdown in one call. Stop accepting at once; let every
 * connection deliver what its send queue holds, then FIN; close each one when its peer has
 * closed too; at the deadline, destroy what remains and say how many.
 *
 * Why wait for the peer's end instead of closing as soon as the queue is empty: closing a TCP
 * socket with unread input makes the kernel send a reset, and a reset can destroy the last
 * bytes before the peer has read them (the "lingering close" of Apache and nginx). So after the
 * FIN, input is read and dropped until the peer's EOF.
 */
import { checkInteger, invalidType, invalidValue } from '../core/errors.ts';
import { Interest, type MultiplexerEvent } from '../loop/multiplexer-types.ts';
import { Reactor } from '../loop/reactor.ts';
import { Listener } from '../stream/listener.ts';
import { END_OF_STREAM, Socket } from '../stream/socket.ts';

/** Options of {@link shutdownServer}. */
export interface ShutdownOptions {
  /** How long connections may take to drain and close before they are destroyed (milliseconds). */
  timeoutMs: number;
}

/** How a {@link shutdownServer} went. */
export interface ShutdownResult {
  /** Connections that delivered their queue and closed cleanly before the deadline. */
  closed: number;
  /** Connections that failed while draining (a reset, a broken pipe): their loss is in `errors`. */
  failed: number;
  /** Connections still open at the deadline, destroyed then. */
  destroyed: number;
  /** The errors of the failed connections (each `SocketError` says how many bytes it stranded). */
  errors: Error[];
}

/**
 * Shuts a server down gracefully: closes `listeners` at once (no new connections), then for
 * each socket of `sockets`: stops handing its input to you, delivers everything already queued
 * for it, sends FIN, reads and drops input until the peer's EOF, and closes. Resolves when every
 * socket is closed, or at `options.timeoutMs`, when the rest are destroyed (`destroyed` says how
 * many). Never rejects for a connection's failure: see `failed` and `errors`.
 *
 * The sockets are taken over in `reactor` (their handlers are replaced; sockets not in it are
 * added). Sockets already closed count as closed.
 */
export async function shutdownServer(
  listeners: Listener | Iterable<Listener>,
  sockets: Iterable<Socket>,
  reactor: Reactor,
  options: ShutdownOptions,
): Promise<ShutdownResult> {
  const listenerList = listeners instanceof Listener ? [listeners] : checkIterable('listeners', listeners, Listener, 'Listener');
  const socketList = checkIterable('sockets', sockets, Socket, 'Socket');
  if (!(reactor instanceof Reactor)) throw invalidType('reactor', 'an instance of Reactor', reactor);
  if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
  const timeoutMs = checkInteger('options.timeoutMs', options.timeoutMs, 0, 2 ** 31 - 1);
  for (const listener of listenerList) listener.close();

  const result: ShutdownResult = { closed: 0, failed: 0, destroyed: 0, errors: [] };
  const pending = new Set<Socket>();
  const waits: Promise<void>[] = [];
  for (const socket of socketList) {
    if (socket.state === 'closed' || pending.has(socket)) {
      if (socket.state === 'closed' && !pending.has(socket)) result.closed++;
      continue;
    }
    pending.add(socket);
    waits.push(socket.whenClosed().then(() => {
      if (!pending.delete(socket)) return; // destroyed at the deadline: counted there
      if (socket.error !== null) {
        result.failed++;
        result.errors.push(socket.error);
      } else result.closed++;
    }));
    linger(socket, reactor);
  }
  if (pending.size === 0) return result;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((ok) => (timer = setTimeout(ok, timeoutMs)));
  await Promise.race([Promise.all(waits), deadline]);
  clearTimeout(timer);
  for (const socket of pending) {
    result.destroyed++;
    socket.destroy();
  }
  pending.clear();
  return result;
}

/** Takes `socket` over: FIN after its queue, drop input until the peer's EOF, then close. */
function linger(socket: Socket, reactor: Reactor): void {
  const buffer = reactor.multiplexer.receiveBuffer;
  const handler = (event: MultiplexerEvent): void => {
    if (socket.state === 'closed' || socket.state === 'closing') return;
    if (event.error !== null || socket.error !== null) return socket.destroy();
    // One read per event: epoll is level-triggered, what is left is reported again.
    if ((event.readable || event.hangup) && socket.receiveInto(buffer) === END_OF_STREAM) {
      if (socket.error !== null) socket.destroy();
      else socket.close(); // the queue has drained (FIN went after it) or drains first
    }
  };
  if (socket.state === 'closing') {
    // close() was called already: it finishes by itself once the queue has drained.
    if (!reactor.multiplexer.has(socket)) reactor.add(socket, () => {}, Interest.NONE);
    return;
  }
  if (reactor.multiplexer.has(socket)) reactor.modify(socket, Interest.READABLE, handler);
  else reactor.add(socket, handler, Interest.READABLE);
  socket.shutdown('write'); // FIN once the queue has drained (nothing if it went already)
  // The peer may have ended its side before we took over (the end already read): then no
  // readable event will come, so look now.
  if (socket.receiveInto(buffer) === END_OF_STREAM) {
    if (socket.error !== null) socket.destroy();
    else socket.close();
  }
}

function checkIterable<T>(name: string, value: unknown, type: abstract new (...args: never[]) => T, typeName: string): T[] {
  if (value === null || typeof value !== 'object' || typeof (value as Iterable<unknown>)[Symbol.iterator] !== 'function') {
    throw invalidType(name, `an iterable of ${typeName}`, value);
  }
  const list = [...(value as Iterable<unknown>)];
  list.forEach((item, i) => {
    if (!(item instanceof type)) throw invalidType(`${name}[${i}]`, `an instance of ${typeName}`, item);
  });
  return list as T[];
}
