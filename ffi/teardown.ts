/**
 * Native help for the end of a worker thread, which JavaScript cannot give: `worker.terminate()`
 * stops JS before anything of ours could run (no `process.on('exit')`, no FinalizationRegistry
 * callback), so an fd closed "at teardown" must be closed by native code that Node runs then.
 *
 * - **Closing fds.** Node's public addon API `node::AddEnvironmentCleanupHook(isolate, fn, arg)`
 *   runs `fn(arg)` when this thread's Node environment is torn down, however the worker ends;
 *   `RemoveEnvironmentCleanupHook` takes it back. With `fn` = libc `close` and `arg` = the fd,
 *   Node closes the fd for us (an `int` travels in the first argument register, as a pointer
 *   would, on x86_64 and aarch64). Node aborts if one (fn, arg) pair is added twice, so the set
 *   below keeps each fd at most once.
 * - **Keeping koffi mapped.** At teardown Node unloads (dlclose) the addons the environment
 *   loaded. When the main thread never loaded koffi, its code is unmapped while libuv still has
 *   to run the close callback of a koffi poll handle: SIGSEGV. Marking koffi.node RTLD_NODELETE
 *   (`dlopen(path, RTLD_NOLOAD | RTLD_NODELETE)` on the already loaded file) keeps it mapped.
 *
 * Only worker threads need either: the main thread's fds and code go with the process. Each
 * worker evaluates this module for itself, so the state below is per thread, as the environment
 * it mirrors is. If the Node build does not export these symbols, fds are left to the
 * FinalizationRegistry as before (nothing throws).
 */
import koffi from 'koffi';
import { readFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

// <dlfcn.h> values, the same on every Linux architecture glibc supports.
const RTLD_LAZY = 0x1;
const RTLD_NOLOAD = 0x4;
const RTLD_NODELETE = 0x1000;

interface CleanupHooks {
  add(fd: number): void;
  remove(fd: number): void;
}

/** The path of the koffi binary this process has loaded (read from /proc/self/maps), or null. */
function loadedKoffiPath(): string | null {
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const at = line.indexOf('/');
    if (at >= 0 && line.endsWith('.node') && /\/koffi[^/]*\.node$/.test(line)) return line.slice(at);
  }
  return null;
}

function bind(): CleanupHooks | null {
  if (isMainThread) return null;
  try {
    // The process itself: the node binary's exported API and, through it, libc's dl functions.
    const self = koffi.load(null);
    const dlopen = self.func('void *dlopen(const char *path, int flags)');
    const dlsym = self.func('void *dlsym(void *handle, const char *name)');
    const path = loadedKoffiPath();
    if (path !== null) dlopen(path, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
    const isolate = self.func('void *_ZN2v87Isolate10GetCurrentEv()')();
    const add = self.func('void _ZN4node25AddEnvironmentCleanupHookEPN2v87IsolateEPFvPvES3_(void *isolate, void *fn, intptr_t arg)');
    const remove = self.func('void _ZN4node28RemoveEnvironmentCleanupHookEPN2v87IsolateEPFvPvES3_(void *isolate, void *fn, intptr_t arg)');
    const close = dlsym(null, 'close');
    if (isolate === null || close === null) return null;
    return { add: (fd) => add(isolate, close, fd), remove: (fd) => remove(isolate, close, fd) };
  } catch {
    return null;
  }
}

const hooks = bind();
/** The fds Node will close at teardown (each registered once, as Node requires). */
const registered = new Set<number>();

/** Whether fds are closed at this thread's teardown (worker threads whose Node exports the hooks). */
export const closesAtTeardown = hooks !== null;

/** Has `fd` closed when this worker's environment is torn down, unless `keepAtTeardown(fd)` comes first. */
export function closeAtTeardown(fd: number): void {
  if (hooks === null || registered.has(fd)) return;
  hooks.add(fd);
  registered.add(fd);
}

/** Forgets `fd` (closed, or handed over): call it before the fd is closed, or its number may be reused. */
export function keepAtTeardown(fd: number): void {
  if (hooks === null || !registered.delete(fd)) return;
  hooks.remove(fd);
}
