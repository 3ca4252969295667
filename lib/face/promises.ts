/**
 * Promise forms of connect and listen, async iteration over accepted connections, and a graceful
 * close you can await. Everything runs on a Reactor (Node's event loop): no thread, no polling.
 *
 * Cancellation follows Node's conventions: an `AbortSignal` rejects with an `AbortError`
 * (`name` 'AbortError', `code` 'ABORT_ERR', `cause` the signal's reason), and whatever was opened
 * for the operation is closed before the promise settles.
 */
import { ERRNO } from '../../ffi/errno.ts';
import { isIP, type InetAddress, type SocketAddress } from '../core/address.ts';
import { abortError, invalidType, invalidValue, SocketClosedError, SocketError } from '../core/errors.ts';
import { Listener, type ListenOptions, type TcpListener, type UnixListener } from '../stream/listener.ts';
import type { MultiplexerEvent } from '../loop/multiplexer-types.ts';
import { Reactor } from '../loop/reactor.ts';
import { ReadyIterator } from './ready-iterator.ts';
import { resolve } from '../core/resolve.ts';
import { Socket } from '../stream/socket.ts';
import type { SocketOptions } from '../stream/send-queue.ts';
import type { SocketOptionValues } from '../core/options.ts';
import { watchAbort } from '../core/abort-watch.ts';

/** Options of {@link connect}. */
export interface AsyncConnectOptions extends SocketOptions {
  /** The reactor that drives the connect (the socket leaves it once open). */
  reactor: Reactor;
  /** An IP literal or a host name (default `'127.0.0.1'`, like `Socket.connect`). */
  host?: string | undefined;
  /** TCP port (required with `host`). */
  port?: number | undefined;
  /** A Unix socket path (or `'\0name'`) instead of host and port. */
  path?: string | undefined;
  /** Only addresses of this family when `host` is a name: 4, 6, or 0 (the default) for both. */
  family?: 0 | 4 | 6 | undefined;
  /** Cancels the lookup and the connect: the promise rejects with an AbortError. */
  signal?: AbortSignal | undefined;
  /**
   * Gives up after this many milliseconds (lookup and every attempt together): the promise
   * rejects with a SocketError `ETIMEDOUT` naming the address being tried. Default: no limit of
   * our own (the kernel gives up on an unanswered SYN after about two minutes).
   */
  timeoutMs?: number | undefined;
  /** Socket options set before each connect attempt (`{ noDelay: true }`), as `Socket.connect` takes them. */
  socketOptions?: Partial<SocketOptionValues> | undefined;
}

/** Options of {@link listen}: those of `Listener.listen`, where `host` may also be a name. */
export interface AsyncListenOptions extends ListenOptions {
  /** Only addresses of this family when `host` is a name: 4, 6, or 0 (the default) for both. */
  family?: 0 | 4 | 6 | undefined;
  /** Cancels the lookup: the promise rejects with an AbortError. */
  signal?: AbortSignal | undefined;
}

/** Options of {@link accepts}. */
export interface AcceptsOptions {
  /** Ends the iteration (pending and later `next()` calls answer `done`). */
  signal?: AbortSignal | undefined;
}

/** Options of {@link closeGracefully}. */
export interface CloseGracefullyOptions {
  /** Gives up waiting: the socket is destroyed (queued bytes dropped) and the promise rejects with an AbortError. */
  signal?: AbortSignal | undefined;
}


function checkReactor(name: string, reactor: unknown): Reactor {
  if (!(reactor instanceof Reactor)) throw invalidType(name, 'an instance of Reactor', reactor);
  return reactor;
}

function checkSignal(name: string, signal: unknown): AbortSignal | undefined {
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidType(name, 'an instance of AbortSignal', signal);
  return signal;
}

/** `options.host` when given: a non-empty string (resolve() would name it plain "host"). */
function checkHost(host: unknown): string | undefined {
  if (host === undefined) return undefined;
  if (typeof host !== 'string') throw invalidType('options.host', 'of type string', host);
  if (host === '' || host.includes('\0')) throw invalidValue('options.host', 'must be a non-empty string without NUL characters', host);
  return host;
}

function checkFamily(name: string, family: unknown): 0 | 4 | 6 {
  if (family === undefined) return 0;
  if (family !== 0 && family !== 4 && family !== 6) throw invalidValue(name, 'must be 0, 4 or 6', family);
  return family;
}

/** The host text `Socket.connect` / `Listener.listen` take for a resolved address (zone kept). */
function hostOf(address: InetAddress): string {
  return address.scopeId ? `${address.address}%${address.scopeId}` : address.address;
}

/** Where an error happened, as SocketError details. */
function detailsOf(target: SocketAddress | { host: string; port: number }): { address?: string; port?: number; path?: string } {
  if ('host' in target) return { address: target.host, port: target.port };
  return target.family === 'unix' ? { path: target.path } : { address: target.address, port: target.port };
}

/**
 * Connects and resolves with the open socket (no longer in the reactor: hand it to `toStream`
 * or `reactor.add`). A host name is resolved first (`resolve`, never blocking the loop) and its
 * addresses are tried one after the other, in the resolver's order, until one connects (no
 * "happy eyeballs"); the promise rejects with the last attempt's SocketError (`ECONNREFUSED`...,
 * naming the address), a `ResolveError` (`ENOTFOUND`) when the name does not resolve, an
 * AbortError, or a SocketError `ETIMEDOUT` after `timeoutMs`. A socket that did not connect is
 * always destroyed before the promise rejects.
 */
export async function connect(options: AsyncConnectOptions): Promise<Socket> {
  if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
  const reactor = checkReactor('options.reactor', options.reactor);
  const signal = checkSignal('options.signal', options.signal);
  const family = checkFamily('options.family', options.family);
  const { timeoutMs, path, sendQueueLimit, socketOptions } = options;
  if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !(timeoutMs >= 0) || timeoutMs > 2 ** 31 - 1)) {
    throw invalidValue('options.timeoutMs', 'must be a number of milliseconds from 0 to 2147483647', timeoutMs);
  }
  if (path !== undefined && (options.host !== undefined || options.port !== undefined)) {
    throw invalidValue('options', 'takes either path, or host and port, not both');
  }
  const host = checkHost(options.host) ?? '127.0.0.1';
  if (path === undefined && options.port === undefined) throw invalidValue('options.port', 'is required with a host', options.port);
  if (signal?.aborted) throw abortError(signal);
  if (reactor.closed) throw new SocketClosedError('reactor', 'connect');

  return new Promise<Socket>((settleOk, settleErr) => {
    let settled = false;
    let current: Socket | null = null;
    let target: SocketAddress | { host: string; port: number } = path !== undefined ? { family: 'unix', path } : { host, port: options.port ?? 0 };
    const lookupAbort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let unwatch: (() => void) | undefined;
    let unhookReactor: (() => void) | undefined;

    const finish = (err: unknown, socket?: Socket): void => {
      if (settled) {
        socket?.destroy(); // an attempt that ended after we gave up
        return;
      }
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      unwatch?.();
      unhookReactor?.();
      if (err !== null) {
        current?.destroy(); // also takes it out of the reactor
        lookupAbort.abort();
        settleErr(err);
      } else settleOk(socket!);
    };
    const onAbort = (): void => finish(abortError(signal!));
    if (signal !== undefined) unwatch = watchAbort(signal, onAbort);
    // A reactor closed while the connect waits would never report its end (found from outside).
    unhookReactor = reactor._onClose(() => finish(new SocketClosedError('reactor', 'connect')));
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => finish(new SocketError('connect', ERRNO.ETIMEDOUT, detailsOf(target))), timeoutMs);
    }

    /** One attempt: resolves with the open socket, rejects with why it failed. */
    const attempt = (to: SocketAddress): Promise<Socket> =>
      new Promise<Socket>((ok, fail) => {
        target = to;
        const socket =
          to.family === 'unix'
            ? Socket.connect({ path: to.path, sendQueueLimit, socketOptions })
            : Socket.connect({ host: hostOf(to), port: to.port, sendQueueLimit, socketOptions });
        current = socket;
        if (socket.state === 'open') return ok(socket); // Unix sockets connect at once
        try {
          reactor.add(
            socket,
            (event: MultiplexerEvent) => {
              if (event.error !== null || socket.error !== null) {
                socket.destroy();
                fail(event.error ?? socket.error);
              } else if (socket.state === 'open') {
                reactor.remove(socket);
                ok(socket);
              }
            },
            0, // the connect's end is reported as writable whatever the interest
          );
        } catch (err) {
          socket.destroy(); // the reactor is closed: no attempt can finish
          throw err;
        }
      });

    const run = async (): Promise<Socket> => {
      const addresses: SocketAddress[] =
        path !== undefined ? [{ family: 'unix', path }] : await resolve(host, { port: options.port, family, signal: lookupAbort.signal });
      let last: unknown = new SocketError('connect', ERRNO.EADDRNOTAVAIL, detailsOf(target));
      for (const address of addresses) {
        if (settled) break;
        try {
          return await attempt(address);
        } catch (err) {
          last = err;
          current = null;
        }
      }
      throw last;
    };
    run().then(
      (socket) => finish(null, socket),
      (err: unknown) => finish(err),
    );
  });
}

/**
 * Resolves `options.host` when it is a name (IP literals and Unix paths need no lookup) and
 * listens on its first address, like `net.Server.listen(port, host)`. Rejects with the
 * `ResolveError`, the SocketError of bind/listen (EADDRINUSE...), or an AbortError.
 */
export function listen(options: AsyncListenOptions & { path: string }): Promise<UnixListener>;
export function listen(options?: AsyncListenOptions & { path?: undefined }): Promise<TcpListener>;
export function listen(options?: AsyncListenOptions): Promise<Listener>;
export async function listen(options: AsyncListenOptions = {}): Promise<Listener> {
  if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
  const signal = checkSignal('options.signal', options.signal);
  const family = checkFamily('options.family', options.family);
  if (signal?.aborted) throw abortError(signal);
  const { signal: _signal, family: _family, ...listenOptions } = options;
  const host = checkHost(options.host);
  if (options.path !== undefined || host === undefined || isIP(host) !== 0) return Listener.listen(listenOptions);
  const [first] = await resolve(host, { family, signal });
  if (signal?.aborted) throw abortError(signal);
  return Listener.listen({ ...listenOptions, host: hostOf(first) });
}

/**
 * Async iteration over the connections `listener` accepts, driven by `reactor`:
 *
 * ```ts
 * for await (const socket of accepts(listener, reactor, { signal })) handle(socket);
 * ```
 *
 * The iterator registers the listener with the reactor (taking over its handler if it was
 * there) and accepts only while a `next()` is waiting, so connections nobody asked for stay in
 * the kernel's backlog, not in memory. It ends (`done`) when the signal aborts, when `return()`
 * is called (a `break` out of `for await`, or `await using`), or, at the next `next()`, once the
 * listener is closed; ending takes the listener out of the reactor and leaves it open. An accept
 * error (EMFILE...) rejects that `next()` and ends the iteration; the listener stays usable.
 *
 * Closing the reactor ends the iteration: pending `next()` calls answer `done`. Closing the
 * listener while a `next()` is pending does not wake that `next()`: end the iteration with the
 * signal or `return()` first.
 */
export function accepts(listener: Listener, reactor: Reactor, options: AcceptsOptions = {}): AcceptIterator {
  if (!(listener instanceof Listener)) throw invalidType('listener', 'an instance of Listener', listener);
  checkReactor('reactor', reactor);
  if (reactor.closed) throw new SocketClosedError('reactor', 'accepts');
  if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
  const source = { target: listener, take: () => listener.accept(), open: () => !listener.closed };
  return new ReadyIterator<Socket>(source, reactor, checkSignal('options.signal', options.signal));
}

/** What {@link accepts} returns: an async iterator of sockets that `return()` (or disposal) ends. */
export interface AcceptIterator extends AsyncIterableIterator<Socket>, AsyncDisposable {
  /** Ends the iteration: pending `next()` calls answer `done`; the listener leaves the reactor, open. */
  return(): Promise<IteratorResult<Socket>>;
}


/**
 * Closes `socket` gracefully and resolves once it is closed: at once when nothing is queued,
 * otherwise after the reactor has flushed the send queue to the kernel (what `close()` does,
 * but awaitable: a plain `close()` gives no sign when it completes). Rejects with the
 * SocketError when the connection fails first (its `unsentBytes` says how much was lost), or
 * with an AbortError when `options.signal` aborts (the socket is destroyed then). The socket is
 * closed in every case. Use it instead of `close()`, not after it.
 */
export async function closeGracefully(socket: Socket, reactor: Reactor, options: CloseGracefullyOptions = {}): Promise<void> {
  if (!(socket instanceof Socket)) throw invalidType('socket', 'an instance of Socket', socket);
  checkReactor('reactor', reactor);
  if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
  const signal = checkSignal('options.signal', options.signal);
  if (socket.state === 'closed') return;
  if (socket.state === 'closing') {
    throw invalidValue('socket', 'is already closing (close() was called), so its end cannot be awaited; call closeGracefully() instead of close()');
  }
  if (signal?.aborted) {
    socket.destroy();
    throw abortError(signal);
  }
  if (socket.error !== null || socket.queuedBytes === 0) {
    socket.destroy();
    return;
  }
  socket._awaitDrain(); // a ring sending the queue reports its drain only when asked
  await new Promise<void>((ok, fail) => {
    let unwatch: (() => void) | undefined;
    let unhookReactor: (() => void) | undefined;
    const done = (err: unknown): void => {
      unwatch?.();
      unhookReactor?.();
      socket.destroy();
      if (err === null) ok();
      else fail(err);
    };
    const onAbort = (): void => done(abortError(signal!));
    // The socket signals the queue's end (or a finished connect) as writable; it flushes itself.
    const handler = (event: MultiplexerEvent): void => {
      if (event.error !== null || socket.error !== null) done(event.error ?? socket.error);
      else if (socket.queuedBytes === 0 && socket.state === 'open') done(null);
    };
    try {
      if (reactor.multiplexer.has(socket)) reactor.modify(socket, 0, handler);
      else reactor.add(socket, handler, 0);
    } catch (err) {
      done(err); // a closed reactor cannot flush the queue: still close the socket, as promised
      return;
    }
    if (signal !== undefined) unwatch = watchAbort(signal, onAbort);
    // Nothing flushes the queue once the reactor is closed: the socket is closed, the loss reported.
    unhookReactor = reactor._onClose(() => done(new SocketClosedError('reactor', 'closeGracefully')));
  });
}
