/**
 * One 'abort' listener per AbortSignal, however many of the library's operations share it.
 *
 * Why: a program that gives one signal to hundreds of lookups or waits (a shutdown signal, say)
 * would otherwise add a listener each, and past ten Node prints "MaxListenersExceededWarning:
 * Possible EventTarget memory leak detected" — found from outside with 300 resolve() calls. Here
 * the signal gets one listener, which calls every operation still watching, in the order they
 * began; the listener leaves the signal when the last of them is done with it.
 *
 * The table is per module instance, so per thread, as signals are (an AbortSignal cannot be
 * transferred); it holds signals weakly.
 */

type Watchers = Set<() => void>;

const watching = new WeakMap<AbortSignal, { watchers: Watchers; listener: () => void }>();

/**
 * Calls `onAbort` once if `signal` aborts before the returned function is called; that function
 * stops watching (call it when the operation settles, whichever way). `signal` must not be aborted
 * already: callers check `signal.aborted` first, as an abort event never comes twice.
 */
export function watchAbort(signal: AbortSignal, onAbort: () => void): () => void {
  let entry = watching.get(signal);
  if (entry === undefined) {
    const watchers: Watchers = new Set();
    const listener = (): void => {
      watching.delete(signal);
      for (const watcher of watchers) watcher();
      watchers.clear();
    };
    entry = { watchers, listener };
    watching.set(signal, entry);
    signal.addEventListener('abort', listener, { once: true });
  }
  const { watchers, listener } = entry;
  // A wrapper of its own: the same function may watch twice, and each stop removes its own.
  const watcher = (): void => onAbort();
  watchers.add(watcher);
  return () => {
    if (!watchers.delete(watcher) || watchers.size > 0) return;
    if (watching.get(signal)?.watchers === watchers) watching.delete(signal);
    signal.removeEventListener('abort', listener);
  };
}
