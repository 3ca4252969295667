/**
 * Name resolution that never blocks the event loop.
 *
 * Numeric addresses are parsed here, in TypeScript, with no libc call at all. Names go to
 * getaddrinfo(3) on libuv's threadpool through koffi's `.async`, the way Node's own
 * `dns.lookup` works, so /etc/hosts, nsswitch and the system resolver are honoured.
 *
 * ## Buffers of an asynchronous call
 * koffi does not keep the buffers of an `.async` call alive, and V8 may move a small typed array
 * that lives on its heap while the threadpool writes into it (design §3). So every buffer the call
 * sees is a view into ONE off-heap block (`Buffer.alloc` of more than 64 bytes is never on V8's
 * heap), and the completion callback's closure holds that block until getaddrinfo has returned.
 *
 * ## Cancelling and exiting
 * A getaddrinfo call that has started cannot be cancelled. An `AbortSignal` rejects the promise at
 * once; the call's result is freed when it arrives and dropped. A lookup in flight keeps the event
 * loop alive only until it completes, and `process.exit()` waits for it at most as long (libuv
 * joins its threadpool at exit), exactly like `dns.lookup`.
 *
 * ## A queue of lookups
 * koffi refuses an asynchronous call once `max_async_calls` (256) of them are queued, and each
 * holds 256 KiB of koffi's memory while it waits; libuv runs only UV_THREADPOOL_SIZE (4 by
 * default) at once anyway. So lookups wait in a FIFO queue here and at most `MAX_IN_FLIGHT` are
 * handed to koffi; every call resolves, however many are made at once, as with `dns.lookup`.
 *
 * ## Why no AI_ADDRCONFIG
 * glibc's AI_ADDRCONFIG ignores loopback interfaces: on a host with no IPv6 address but `::1`
 * (containers, CI, this project's test machine), `resolve('localhost', { family: 6 })` would
 * fail with ENOTFOUND and a family-0 lookup would drop `::1`, though connecting to `::1` works.
 * Like `dns.lookup`'s default we return every address the resolver knows; a caller that tries
 * them in order (as `echo-client` does) learns of an unusable family at once (ENETUNREACH /
 * EADDRNOTAVAIL from connect, no timeout).
 */
import { AF_INET, AF_INET6, AF_UNSPEC, EAI_AGAIN, EAI_NAMES, EAI_NODATA, EAI_NONAME, EAI_SYSTEM, SOCK_STREAM } from '../../ffi/constants.ts';
import { OFFSETOF, SIZEOF } from '../../ffi/layouts.ts';
import { sys, type AddrInfoEntry } from '../../ffi/syscall.ts';
import { inetAddress, isIP, type InetAddress } from './address.ts';
import { decodeSockaddr } from './sockaddr.ts';
import { abortError, checkInteger, invalidType, invalidValue } from './errors.ts';
import { watchAbort } from './abort-watch.ts';

/** Options of {@link resolve}. */
export interface ResolveOptions {
  /** 4: IPv4 addresses only; 6: IPv6 only; 0 (the default): both, in the resolver's order. */
  family?: 4 | 6 | 0 | undefined;
  /** Port put in every result (default 0). Names are resolved without a service. */
  port?: number | undefined;
  /** Rejects the promise with an `AbortError` as soon as it is aborted. */
  signal?: AbortSignal | undefined;
}

/**
 * A failed lookup, shaped like the errors of Node's `dns` module: `code` is `'ENOTFOUND'` when the
 * name does not exist (EAI_NONAME, EAI_NODATA), `'EAI_AGAIN'` when the resolver could not answer
 * now (no network, a DNS server timed out), else the EAI_* name (`'EAI_FAIL'`, `'EAI_MEMORY'`...).
 */
export class ResolveError extends Error {
  /** `'ENOTFOUND'`, `'EAI_AGAIN'`, `'EAI_FAIL'`... */
  readonly code: string;
  /** getaddrinfo's own return value (an EAI_* constant, negative on glibc). */
  readonly errno: number;
  /** Always `'getaddrinfo'`. */
  readonly syscall = 'getaddrinfo';
  /** The name that was looked up. */
  readonly hostname: string;

  constructor(eai: number, hostname: string, cause?: unknown) {
    const code = eai === EAI_NONAME || eai === EAI_NODATA ? 'ENOTFOUND' : (EAI_NAMES.get(eai) ?? `EAI_${-eai}`);
    super(`getaddrinfo ${code} ${hostname}${cause === undefined ? '' : ` (${String(cause)})`}`, cause === undefined ? undefined : { cause });
    this.name = 'ResolveError';
    this.code = code;
    this.errno = eai;
    this.hostname = hostname;
  }
}


/** Where each part of a lookup lives in its one off-heap block. */
const HINTS_AT = 0;
const RESULT_AT = 64; // a `struct addrinfo *` written by getaddrinfo
const NAME_AT = 128; // the NUL-terminated name
const TEXT = new TextEncoder();

interface Validated {
  family: 0 | 4 | 6;
  port: number;
  signal: AbortSignal | undefined;
}

function validate(host: unknown, options: unknown): Validated {
  if (typeof host !== 'string') throw invalidType('host', 'of type string', host);
  if (host === '') throw invalidValue('host', 'must not be empty', host);
  if (host.includes('\0')) throw invalidValue('host', 'must not contain a NUL character', host);
  if (options === undefined) return { family: 0, port: 0, signal: undefined };
  if (options === null || typeof options !== 'object') throw invalidValue('options', 'must be an object', options);
  const { family = 0, port = 0, signal } = options as ResolveOptions;
  if (family !== 0 && family !== 4 && family !== 6) throw invalidValue('options.family', 'must be 0, 4 or 6', family);
  checkInteger('options.port', port, 0, 65535);
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidType('options.signal', 'an instance of AbortSignal', signal);
  return { family, port, signal };
}

/**
 * Resolves `host` to its addresses, without blocking the event loop.
 *
 * - An IP literal (`'127.0.0.1'`, `'::1'`, `'fe80::1%lo'`) answers at once, with no libc call
 *   (a zone name is turned into `scopeId` like `inetAddress` does). Its family must agree with
 *   `options.family` when one is given.
 * - A name is looked up with getaddrinfo on libuv's threadpool: every address the resolver gives
 *   (files, DNS...), in its order, each once (SOCK_STREAM hints). No AI_ADDRCONFIG (see the
 *   module comment).
 *
 * Rejects with a {@link ResolveError} (`code` 'ENOTFOUND', 'EAI_AGAIN'...), or an `AbortError`
 * when `options.signal` aborts first. Throws (synchronously rejects) argument errors naming
 * the argument: `host` (a non-empty string), `options.family`, `options.port` (0..65535),
 * `options.signal`.
 */
export async function resolve(host: string, options?: ResolveOptions): Promise<InetAddress[]> {
  const { family, port, signal } = validate(host, options);
  if (signal?.aborted) throw abortError(signal);
  const literal = isIP(host);
  if (literal !== 0) {
    if (family !== 0 && family !== literal) {
      throw invalidValue('options.family', `is ${family}, but host is an IPv${literal} address`, family);
    }
    return [inetAddress(host, port, { host: 'host', port: 'options.port' })];
  }
  return lookup(host, family, port, signal);
}

/**
 * Lookups handed to koffi at most at once. Enough to keep a threadpool of up to 128 threads busy
 * (UV_THREADPOOL_SIZE, read once: libuv reads it once too), well under koffi's 256, and leaves
 * room for other users of koffi's asynchronous calls in this thread.
 */
const MAX_IN_FLIGHT = Math.min(128, Math.max(32, Number(process.env.UV_THREADPOOL_SIZE) || 0));

/** One lookup waiting for its turn. */
interface Job {
  /** Hands the lookup to koffi: null, or what koffi threw when it refused. */
  start(): unknown;
  /** koffi refused and no lookup of ours is in flight to retry after: fail with a code. */
  refuse(reason: unknown): void;
  /** Aborted while waiting: never to start. */
  cancelled: boolean;
}

/**
 * The lookups of this thread: how many are in koffi's hands, and the ones waiting, in order.
 *
 * This is module-level state, and the library's rule is "no global mutable state". Here the
 * state *is* per thread: each worker thread evaluates this module for itself (as it loads its
 * own koffi bindings), and what the queue rations, koffi's asynchronous calls and libuv's
 * threadpool queue, belongs to the thread's event loop, not to any object a user could hand to
 * another thread. An object per caller (a Resolver) would not bound the thread's total, which is
 * what koffi counts. Nothing here is shared between threads or outlives the thread's loop.
 */
class LookupQueue {
  #inFlight = 0;
  readonly #waiting: Job[] = [];
  #head = 0;

  /** Runs `job` now if there is room, else when a lookup before it finishes. */
  submit(job: Job): void {
    this.#waiting.push(job);
    this.#pump();
  }

  /** A lookup handed to koffi has come back. */
  finished(): void {
    this.#inFlight--;
    this.#pump();
  }

  #pump(): void {
    const waiting = this.#waiting;
    while (this.#inFlight < MAX_IN_FLIGHT && this.#head < waiting.length) {
      const job = waiting[this.#head];
      if (job.cancelled) {
        this.#take();
        continue;
      }
      this.#inFlight++;
      const refusal = job.start();
      if (refusal !== null) {
        // koffi refused (other code holds its asynchronous slots): try again when one of ours
        // comes back. With none of ours in flight nothing would wake us: fail it, with a code.
        this.#inFlight--;
        if (this.#inFlight > 0) return;
        job.refuse(refusal);
      }
      this.#take();
    }
  }

  #take(): void {
    this.#head++;
    // Compact now and then, so a long burst does not keep a long array of finished jobs.
    if (this.#head >= 1024 && this.#head * 2 >= this.#waiting.length) {
      this.#waiting.splice(0, this.#head);
      this.#head = 0;
    }
  }
}

const lookups = new LookupQueue();

/** The getaddrinfo round trip: queue it, start it, settle on completion or abort, free what comes back. */
function lookup(host: string, family: 0 | 4 | 6, port: number, signal: AbortSignal | undefined): Promise<InetAddress[]> {
  return new Promise((resolvePromise, reject) => {
    let settled = false;
    let unwatch: (() => void) | undefined;
    const job: Job = {
      start,
      refuse(reason) {
        settled = true;
        unwatch?.();
        reject(new ResolveError(EAI_AGAIN, host, reason));
      },
      cancelled: false,
    };
    const onAbort = (): void => {
      settled = true;
      job.cancelled = true; // still waiting: never started; started: the result is dropped
      reject(abortError(signal!));
    };

    function start(): unknown {
      const name = TEXT.encode(host);
      // One block for everything libc sees, > 64 bytes so that it is off V8's heap (see above).
      const block = Buffer.alloc(NAME_AT + name.byteLength + 1);
      block.set(name, NAME_AT); // NUL-terminated: the block is zero-filled
      block.writeInt32LE(family === 4 ? AF_INET : family === 6 ? AF_INET6 : AF_UNSPEC, HINTS_AT + OFFSETOF.addrinfo.family);
      // One socket type, or each address would come three times (STREAM, DGRAM, RAW).
      block.writeInt32LE(SOCK_STREAM, HINTS_AT + OFFSETOF.addrinfo.socktype);
      const done = (err: unknown, eai: number): void => {
        // `block` is referenced here, so it lives until getaddrinfo has returned.
        lookups.finished();
        let result: InetAddress[] | null = null;
        let failure: unknown = err == null ? null : new ResolveError(EAI_SYSTEM, host, err);
        try {
          // Copied out and freed whether or not the lookup is still wanted.
          const entries = err == null && eai === 0 ? sys.takeAddrInfo(block.subarray(RESULT_AT, RESULT_AT + 8)) : [];
          if (failure === null && eai !== 0) failure = new ResolveError(eai, host);
          else if (failure === null && !settled) {
            result = decodeList(entries, port);
            // Only non-IP families came back (none should with these hints): the name has no address.
            if (result.length === 0) [result, failure] = [null, new ResolveError(EAI_NODATA, host)];
          }
        } catch (decodeErr) {
          failure = new ResolveError(EAI_SYSTEM, host, decodeErr);
        }
        unwatch?.();
        if (settled) return; // aborted meanwhile: the result is dropped
        settled = true;
        if (result !== null) resolvePromise(result);
        else reject(failure);
      };
      try {
        getaddrinfoAsync(block, done);
        return null;
      } catch (err) {
        // koffi refuses when max_async_calls of its asynchronous calls are queued, ours or not.
        return err ?? new Error('koffi refused the call');
      }
    }

    if (signal !== undefined) unwatch = watchAbort(signal, onAbort);
    lookups.submit(job);
  });
}

/** Starts getaddrinfo(name, NULL, hints, &res) with every pointer a view of `block`. */
function getaddrinfoAsync(block: Buffer, callback: (err: unknown, eai: number) => void): void {
  sys.getaddrinfoAsync(
    block.subarray(NAME_AT),
    block.subarray(HINTS_AT, HINTS_AT + SIZEOF.addrinfo),
    block.subarray(RESULT_AT, RESULT_AT + SIZEOF.pointer),
    callback,
  );
}

/** The IP addresses of a getaddrinfo answer, in order, without duplicates. */
function decodeList(entries: readonly AddrInfoEntry[], port: number): InetAddress[] {
  const seen = new Set<string>();
  const out: InetAddress[] = [];
  for (const entry of entries) {
    if (entry.family !== AF_INET && entry.family !== AF_INET6) continue;
    const addr = decodeSockaddr(entry.sockaddr, entry.length) as InetAddress;
    addr.port = port;
    const key = `${addr.address}%${addr.scopeId ?? 0}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(addr);
    }
  }
  return out;
}
