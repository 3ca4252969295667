/**
 * The error every failed libc call of m-socket throws (see syscall.ts, the choke point that makes
 * them): shaped like Node's own (`err.code`, `err.errno`, `err.syscall`), with where the call was
 * aimed and a hint of what to check, fitted to an IP address, a Unix path or an abstract name.
 */
import { errnoDescription, errnoName } from './errno.ts';

/** Where a failed call was aimed, when the caller knows: added to the error and its message. */
export interface ErrorDetails {
  fd?: number;
  address?: string;
  port?: number;
  path?: string;
}

/**
 * What to check when a call fails with a code. Hints about ports and interfaces are wrong for a
 * Unix path (and the reverse), and file hints are wrong for an abstract name (no file), so each
 * code has a hint for an IP address or an fd (`ip`), a Unix socket path (`path`), an abstract name
 * (`abstract`, the path starts with NUL), or one for all (`any`).
 */
interface Hint {
  ip?: string;
  path?: string;
  abstract?: string;
  any?: string;
}

const HINTS: Readonly<Record<string, Hint>> = {
  EADDRINUSE: {
    ip: 'another socket is bound to this address; choose another port, or use port 0 for a free one',
    path: 'a file already exists at this path; remove it if no server uses it any more, or choose another path',
    abstract: 'another socket is bound to this abstract name; choose another name',
  },
  EADDRNOTAVAIL: { ip: 'this address does not belong to any interface of this machine' },
  EACCES: {
    ip: 'binding ports below 1024 needs privileges (CAP_NET_BIND_SERVICE)',
    path: 'no permission to create or reach the socket file: check the directory and the file mode',
  },
  ENOENT: { path: 'no socket file at this path, or a directory on the way is missing' },
  ECONNREFUSED: {
    ip: 'nothing is listening at that address',
    path: 'the socket file exists but nothing is listening on it',
    abstract: 'nothing is listening on this abstract name',
  },
  EMFILE: { any: 'this process has run out of file descriptors; close sockets or raise the limit (ulimit -n)' },
  ENFILE: { any: 'the system has run out of file descriptors' },
  EBADF: { any: 'the file descriptor is not open' },
};

/** The hint for `code`, fitting where the call was aimed (an abstract name, a Unix path, or neither). */
function hintFor(code: string, details: ErrorDetails): string | undefined {
  const hint = HINTS[code];
  if (hint === undefined) return undefined;
  if (hint.any !== undefined) return hint.any;
  if (details.path === undefined) return hint.ip;
  return String(details.path).startsWith('\0') ? hint.abstract : hint.path;
}

/** A failed system call, shaped like Node's own errors (`err.code`, `err.errno`, `err.syscall`). */
export class SocketError extends Error {
  /** Symbolic errno name, e.g. `'ECONNREFUSED'`. */
  readonly code: string;
  /** Negative errno, as Node reports it (`-111` for ECONNREFUSED on Linux). */
  readonly errno: number;
  /** The libc function that failed, e.g. `'connect'`. */
  readonly syscall: string;
  /** The file descriptor involved, when there was one. */
  declare readonly fd?: number;
  /** The IP address involved (connect, bind), when known. */
  declare readonly address?: string;
  /** The port involved, when known. */
  declare readonly port?: number;
  /** The Unix socket path involved, when known. */
  declare readonly path?: string;
  /** Bytes that were queued for sending and never reached the peer, when this error stranded some. */
  declare unsentBytes?: number;
  /** Datagrams that were queued and dropped because of this error (a datagram socket's queue). */
  declare unsentDatagrams?: number;
  /** For an ICMP error reported by `DatagramSocket.reportIcmpErrors`: where it came from. */
  declare origin?: 'icmp' | 'icmp6' | 'local' | 'other';
  /** For an ICMP error: its type and code (3 and 3: port unreachable, over IPv4). */
  declare icmpType?: number;
  declare icmpCode?: number;
  /** When one event reports several errors of the same kind at once: how many (this is the last). */
  declare count?: number;

  constructor(syscall: string, errno: number, details: ErrorDetails = {}) {
    const code = errnoName(errno);
    const where =
      details.path !== undefined
        ? ` ${JSON.stringify(details.path)}`
        : details.address !== undefined
          ? ` ${details.address.includes(':') ? `[${details.address}]` : details.address}` +
            (details.port !== undefined ? `:${details.port}` : '')
          : details.fd !== undefined
            ? ` (fd ${details.fd})`
            : '';
    const hint = hintFor(code, details);
    super(`${syscall} ${code}${where}: ${errnoDescription(errno)}${hint ? ` (${hint})` : ''}`);
    this.name = 'SocketError';
    this.code = code;
    this.errno = -Math.abs(errno);
    this.syscall = syscall;
    if (details.fd !== undefined) this.fd = details.fd;
    if (details.address !== undefined) this.address = details.address;
    if (details.port !== undefined) this.port = details.port;
    if (details.path !== undefined) this.path = details.path;
  }

  /** The same error with more detail about where it was aimed (used after bind/connect). */
  withDetails(details: ErrorDetails): SocketError {
    const err = new SocketError(this.syscall, -this.errno, { fd: this.fd, ...details });
    err.stack = err.stack?.split('\n')[0] + '\n' + (this.stack?.split('\n').slice(1).join('\n') ?? '');
    return err;
  }
}
