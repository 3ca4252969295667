/**
 * Starts a worker thread on a TypeScript file. Under `node --import tsx` a worker cannot be given
 * a `.ts` file (on Node 20 the loader does not reach a worker's entry point: "Unknown file
 * extension .ts"), so a one-line bootstrap loads it with tsx's `tsImport`, as examples/workers.ts
 * and the README do.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

export function startTsWorker(file: URL, options: WorkerOptions = {}): Worker {
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const bootstrap = `import(${tsx}).then((tsx) => tsx.tsImport(${JSON.stringify(file.href)}, ${JSON.stringify(import.meta.url)}));`;
  return new Worker(bootstrap, { ...options, eval: true });
}
