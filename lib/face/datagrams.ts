/**
 * `for await` over a datagram socket: each datagram as its own copy, with its sender, read only
 * while someone waits (between `next()` calls they stay in the kernel's buffer, which is UDP's
 * backpressure: a full buffer drops, and the kernel counts it). The zero-copy way is a reactor
 * handler with `receiveBatch`; this is the convenient one.
 */
import type { SocketAddress } from '../core/address.ts';
import { checkInteger, invalidType, invalidValue, SocketClosedError } from '../core/errors.ts';
import { DatagramSocket } from '../datagram/datagram-socket.ts';
import { Reactor } from '../loop/reactor.ts';
import { ReadyIterator } from './ready-iterator.ts';

/** One datagram, copied out of the socket: yours to keep. */
export interface ReceivedDatagram {
  bytes: Uint8Array;
  /** Who sent it (Unix: `path` is `''` for a sender with no name). */
  address: SocketAddress;
  /** It was larger than `maxSize`, and cut. */
  truncated: boolean;
}

/** Options of {@link receiveDatagrams}. */
export interface ReceiveDatagramsOptions {
  /** Ends the iteration (pending and later `next()` calls answer `done`); the socket stays open. */
  signal?: AbortSignal | undefined;
  /** The largest datagram taken whole (default 65536); a larger one is cut and marked `truncated`. */
  maxSize?: number | undefined;
}

/** The iterator {@link receiveDatagrams} returns (also `await using`-disposable). */
export interface DatagramIterator extends AsyncIterableIterator<ReceivedDatagram> {
  return(): Promise<IteratorResult<ReceivedDatagram>>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Iterates over the datagrams `socket` receives, driven by `reactor`. Ending the loop (`break`,
 * `return()`, the signal) takes the socket out of the reactor and leaves it open.
 */
export function receiveDatagrams(socket: DatagramSocket, reactor: Reactor, options: ReceiveDatagramsOptions = {}): DatagramIterator {
  if (!(socket instanceof DatagramSocket)) throw invalidType('socket', 'an instance of DatagramSocket', socket);
  if (!(reactor instanceof Reactor)) throw invalidType('reactor', 'an instance of Reactor', reactor);
  if (reactor.closed) throw new SocketClosedError('reactor', 'receiveDatagrams');
  if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
  const { signal } = options;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidType('options.signal', 'an instance of AbortSignal', signal);
  const maxSize = options.maxSize === undefined ? 65536 : checkInteger('options.maxSize', options.maxSize, 1, 65536);
  const buffer = new Uint8Array(maxSize);
  const take = (): ReceivedDatagram | null => {
    const receipt = socket.receiveFrom(buffer);
    return receipt === null ? null : { bytes: receipt.bytes.slice(), address: receipt.address, truncated: receipt.truncated };
  };
  return new ReadyIterator<ReceivedDatagram>({ target: socket, take, open: () => socket.state === 'open' }, reactor, signal);
}
