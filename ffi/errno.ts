/**
 * errno names and descriptions. Names come from koffi (`koffi.os.errno`, read from the C headers
 * koffi was built with); descriptions from libuv's table in Node (`util.getSystemErrorMap()`), so
 * that messages read like Node's own. Both tables are built once and never change.
 */
import koffi from 'koffi';
import { getSystemErrorMap } from 'node:util';

/** errno values by name, e.g. `ERRNO.ECONNREFUSED === 111`. */
export const ERRNO: Readonly<Record<string, number>> = Object.freeze({ ...koffi.os.errno });

const names = new Map<number, string>();
for (const [name, value] of Object.entries(ERRNO)) {
  // EWOULDBLOCK == EAGAIN and EDEADLOCK == EDEADLK on Linux: keep the name Node reports.
  if (!names.has(value) || name === 'EAGAIN' || name === 'EDEADLK') names.set(value, name);
}
const uvMessages = getSystemErrorMap();

/** The symbolic name of an errno value (`111` -> `'ECONNREFUSED'`); `'E<n>'` when unknown. */
export function errnoName(errno: number): string {
  return names.get(errno) ?? `E${errno}`;
}

/** A short human description of an errno value, as Node words it (`'connection refused'`). */
export function errnoDescription(errno: number): string {
  return uvMessages.get(-errno)?.[1] ?? `error ${errno}`;
}

export const EINTR = ERRNO.EINTR;
export const EAGAIN = ERRNO.EAGAIN;
export const EINPROGRESS = ERRNO.EINPROGRESS;
