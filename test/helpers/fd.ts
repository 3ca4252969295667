/**
 * File-descriptor helpers for tests: which fds are open (from /proc/self/fd), their flags (through
 * the library's own fcntl), and a leak check that compares the open set before and after.
 */
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { FD_CLOEXEC, F_GETFD, F_GETFL, O_NONBLOCK, sys } from '../../ffi/index.ts';
import { hubFd } from '../../lib/loop/uv-poll.ts';

/** What an fd refers to (`socket:[123]`, `pipe:[45]`, `/dev/null`), or null once it is closed. */
export function fdTarget(fd: number): string | null {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
}

/**
 * tsx's cache folder. tsx (the test toolchain, not the library) lists it in the background a
 * moment after start-up, and reads and writes its files as modules load, so an fd on it or on a
 * file in it comes and goes by itself, whenever that happens to overlap a test's last fd check
 * (CI, Node 22: a cache file open at the io-uring-accept suite's final check).
 */
const TSX_CACHE = join(tmpdir(), `tsx-${process.geteuid?.() ?? userInfo().username}`);

/**
 * The fds open in this process, ascending, less tsx's own and the thread's reactor hub (one epoll
 * fd a thread keeps from its first Reactor on, by design: see lib/loop/uv-poll.ts). Reading the
 * directory opens one fd of its own, which is closed again by the time we look at the list: it is
 * the entry whose link no longer resolves.
 */
export function openFds(): number[] {
  const hub = hubFd();
  return readdirSync('/proc/self/fd')
    .map(Number)
    .filter((fd) => {
      if (fd === hub) return false;
      const target = fdTarget(fd);
      return target !== null && target !== TSX_CACHE && !target.startsWith(`${TSX_CACHE}/`);
    })
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

/** The open fds as `fd -> target` entries (a socket's target names its inode). */
function openFdEntries(): string[] {
  const entries: string[] = [];
  for (const fd of openFds()) {
    const target = fdTarget(fd);
    if (target !== null) entries.push(`${fd} -> ${target}`);
  }
  return entries;
}

/**
 * Remembers the open fds now; `assertNoLeak()` later fails listing every fd opened since and
 * still open. Fds that were open before are ignored, whatever happened to them meanwhile: the
 * runtime closes some of its own later (Node 22's tsx loader closes two sockets a while after
 * start-up). They are compared as `fd -> target`, so a leak that reuses the number of an fd
 * closed meanwhile is still seen.
 */
export function trackFds(): { assertNoLeak(message?: string): void } {
  const before = new Set(openFdEntries());
  return {
    assertNoLeak(message = 'file descriptors opened and never closed') {
      assert.deepEqual(openFdEntries().filter((entry) => !before.has(entry)), [], message);
    },
  };
}
