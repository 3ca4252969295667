/**
 * File-descriptor helpers for tests: which fds are open (from /proc/self/fd), their flags (through
 * the library's own fcntl), and a leak check that compares the open set before and after.
 */
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { FD_CLOEXEC, F_GETFD, F_GETFL, O_NONBLOCK, sys } from '../../ffi/index.ts';

/** What an fd refers to (`socket:[123]`, `pipe:[45]`, `/dev/null`), or null once it is closed. */
export function fdTarget(fd: number): string | null {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}

/**
 * The fds open in this process, ascending. Reading the directory opens one fd of its own, which
 * is closed again by the time we look at the list: it is the entry whose link no longer resolves.
 */
export function openFds(): number[] {
  return readdirSync('/proc/self/fd')
    .map(Number)
    .filter((fd) => fdTarget(fd) !== null)
    .sort((a, b) => a - b);
}

/** O_NONBLOCK (a file status flag, F_GETFL) and FD_CLOEXEC (an fd flag, F_GETFD) of an open fd. */
export function fdFlags(fd: number): { nonblocking: boolean; cloexec: boolean } {
  const fl = sys.fcntl(fd, F_GETFL, 0);
  const fdfl = sys.fcntl(fd, F_GETFD, 0);
  return { nonblocking: (fl & O_NONBLOCK) !== 0, cloexec: (fdfl & FD_CLOEXEC) !== 0 };
}

/** Design rule 1: every fd the library makes is non-blocking and close-on-exec. */
export function assertNonBlockingCloexec(fd: number): void {
  assert.deepEqual(fdFlags(fd), { nonblocking: true, cloexec: true }, `flags of fd ${fd} (${fdTarget(fd)})`);
}

/**
 * Remembers the open fds now; `assertNoLeak()` later fails listing every fd opened since and
 * still open. Fds that were open before are ignored, whatever happened to them meanwhile.
 */
export function trackFds(): { assertNoLeak(): void } {
  const before = new Set(openFds());
  return {
    assertNoLeak() {
      const leaked = openFds()
        .filter((fd) => !before.has(fd))
        .map((fd) => `${fd} -> ${fdTarget(fd)}`);
      assert.deepEqual(leaked, [], 'file descriptors opened and never closed');
    },
  };
}
