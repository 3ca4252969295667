/**
 * Which backend a multiplexer gets: the one asked for, or epoll where io_uring is refused
 * (the fallback is reported by the multiplexer's `backend`), with the io_uring completion paths
 * its options ask for.
 */
import { isMainThread } from 'node:worker_threads';
import { invalidType, invalidValue, SocketError } from '../../core/errors.ts';
import { BACKEND_NAMES, type Backend, type BackendName } from './backend.ts';
import { EpollBackend } from './epoll.ts';
import { IoUringBackend } from './io-uring.ts';
import { PollBackend } from './poll.ts';

/** Which io_uring completion paths a multiplexer asked for (MultiplexerOptions ringReceive, ringSend, ringAccept). */
export interface RingPaths {
  receive: boolean;
  send: boolean;
  accept: boolean;
  /** An eventfd the kernel signals at once: true for a Reactor, false never to ask (IoUringBackend's `promptWake`). */
  promptWake: boolean | undefined;
}

/**
 * The paths `options` ask for, checked, with their defaults: receive on, send off, accept on
 * the main thread only (a worker's terminate() would leak the connections its last wait
 * accepted: see MultiplexerOptions.ringAccept).
 */
export function ringPathsOf(options: { ringReceive?: unknown; ringSend?: unknown; ringAccept?: unknown; _promptWake?: unknown }): RingPaths {
  for (const name of ['ringReceive', 'ringSend', 'ringAccept'] as const) {
    const value = options[name];
    if (value !== undefined && typeof value !== 'boolean') throw invalidType(`options.${name}`, 'of type boolean', value);
  }
  return {
    receive: (options.ringReceive as boolean | undefined) ?? true,
    send: (options.ringSend as boolean | undefined) ?? false,
    accept: (options.ringAccept as boolean | undefined) ?? isMainThread,
    promptWake: typeof options._promptWake === 'boolean' ? options._promptWake : undefined,
  };
}

export function createBackend(name: unknown, maxEvents: number, ring: RingPaths): [Backend, BackendName] {
  if (name === 'epoll') return [new EpollBackend(maxEvents), 'epoll'];
  if (name === 'poll') return [new PollBackend(maxEvents), 'poll'];
  if (name === 'io_uring') {
    try {
      return [new IoUringBackend(maxEvents, ring.receive, ring.send, ring.accept, ring.promptWake), 'io_uring'];
    } catch (err) {
      // Refused or missing (ENOSYS, EPERM from io_uring_disabled or seccomp, EINVAL/ENOSYS from
      // an old kernel, ENOMEM from a memlock limit): epoll does the same job.
      if (!(err instanceof SocketError)) throw err;
      return [new EpollBackend(maxEvents), 'epoll'];
    }
  }
  throw invalidValue('options.backend', `must be one of ${BACKEND_NAMES.map((n) => `'${n}'`).join(', ')}`, name);
}
