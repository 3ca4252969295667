/**
 * errno names and descriptions, named the way Node names them, from one table.
 *
 * Values come from koffi (`koffi.os.errno`, read from the C headers koffi was built with): it
 * knows every Linux errno, where Node's `os.constants.errno` lacks some (EHOSTDOWN, ENONET...).
 * Several names share a value (EAGAIN/EWOULDBLOCK, ENOTSUP/EOPNOTSUPP, EDEADLK/EDEADLOCK), so
 * the *name* of a value is chosen as Node chooses it: libuv's (`util.getSystemErrorName`, which
 * says ENOTSUP for 95), else the one `os.constants.errno` has, else koffi's. Code that compares
 * `err.code` must compare with these names: build such lists with `errnoCodes` so that an alias
 * (EOPNOTSUPP) cannot silently never match. Descriptions come from libuv's table
 * (`util.getSystemErrorMap()`), so messages read like Node's own. Built once, never changed.
 */
import koffi from 'koffi';
import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

/** errno values by name, aliases included: `ERRNO.ECONNREFUSED === 111`, `ERRNO.EOPNOTSUPP === 95`. */
export const ERRNO: Readonly<Record<string, number>> = Object.freeze({ ...koffi.os.errno });

const uvErrors = getSystemErrorMap();

/** The canonical name of each value: libuv's, else os.constants.errno's, else the first koffi lists. */
const names = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno as Record<string, number>)) {
  if (!names.has(value)) names.set(value, name);
}
for (const [name, value] of Object.entries(ERRNO)) {
  if (!names.has(value)) names.set(value, name);
}
for (const [negative, [name]] of uvErrors) {
  // libuv also maps its own negative codes (UV_EOF -4095, EAI_* as -3000s): keep real errnos only.
  if (ERRNO[name] === -negative) names.set(-negative, name);
}

/**
 * The symbolic name of an errno value as Node reports it in `err.code` (`111` -> `'ECONNREFUSED'`,
 * `95` -> `'ENOTSUP'`, `11` -> `'EAGAIN'`); `'E<n>'` when unknown.
 */
export function errnoName(errno: number): string {
  return names.get(errno) ?? `E${errno}`;
}

/**
 * The `err.code` values that errno names stand for, aliases resolved (`['EOPNOTSUPP']` ->
 * `Set {'ENOTSUP'}`): for lists of codes to compare with `SocketError.code`. An unknown name is
 * a programming error and throws.
 */
export function errnoCodes(errnoNames: readonly string[]): ReadonlySet<string> {
  return new Set(
    errnoNames.map((name) => {
      const value = ERRNO[name];
      if (value === undefined) throw new RangeError(`errnoCodes: no errno is named ${name}`);
      return errnoName(value);
    }),
  );
}

/** A short human description of an errno value, as Node words it (`'connection refused'`). */
export function errnoDescription(errno: number): string {
  return uvErrors.get(-errno)?.[1] ?? `error ${errno}`;
}

export const EINTR = ERRNO.EINTR;
export const EAGAIN = ERRNO.EAGAIN;
export const EINPROGRESS = ERRNO.EINPROGRESS;
