/**
 * A worker that ends with its sockets, listener, multiplexer or reactor still open: the process
 * survives (no SIGSEGV when the main thread never loaded koffi) and everything the worker owned is
 * closed (its listener refuses connections), however the worker ends, on epoll and on io_uring. Each shape runs in a child
 * process whose main thread only orchestrates (test/fixtures/worker-teardown-main.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { hangGuardMs } from './helpers/platform.ts';
import { startTsWorker } from './helpers/ts-worker.ts';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const SHAPES: [shape: string, workerExitCode: number][] = [
  ['reactor-idle/natural', 0],
  ['reactor-idle/exit', 0],
  ['reactor-idle/terminate', 1],
  ['reactor/exit', 0],
  ['reactor/terminate', 1],
  // An fd readable as the worker ends: koffi's own poll callback aborted the process then (FATAL
  // ERROR ... napi_throw, every time); see ffi/libuv.ts.
  ['reactor-busy/terminate', 1],
  ['reactor-busy/exit', 0],
  // So did the handle's ref() and unref(), called as the count of watched targets crosses zero.
  ['reactor-churn/terminate', 1],
  ['reactor-unref/natural', 0],
  ['reactor-unref/terminate', 1],
  ['reactor-unref-pending/natural', 0],
  ['reactor-unref-pending/exit', 0],
  ['multiplexer/natural', 0],
  ['multiplexer/exit', 0],
  ['multiplexer/terminate', 1],
  // io_uring: the ring holds the files of the requests armed in it (polls, the listener's accept):
  // they must go with the worker too (see io-uring-ring.ts, "Buffers the kernel holds").
  ['uring-reactor/exit', 0],
  ['uring-reactor/terminate', 1],
  ['uring-reactor-busy/terminate', 1],
  ['uring-reactor-churn/terminate', 1],
  ['uring-multiplexer/natural', 0],
  ['uring-multiplexer/terminate', 1],
];

describe('worker teardown', () => {
  for (const [shape, workerExitCode] of SHAPES) {
    // A churning worker is stopped at a random point of its churn: the abort it had came in 2 of
    // 10 runs, so it runs 12 times (a 93% chance to see it).
    const runs = shape.includes('churn') ? 12 : 1;
    it(`${shape}: the process survives, the worker's fds are closed${runs > 1 ? ` (${runs} runs)` : ''}`, () => {
      for (let i = 0; i < runs; i++) check(shape, workerExitCode);
    });
  }
});

// On epoll only: an io_uring multiplexer's making still calls koffi.view (its ring memory), which
// aborts the same way (2 of 6 runs of 20 workers; README, "Worker threads").
describe('worker teardown: reactors made and closed as the worker is stopped', () => {
  for (const backend of ['epoll']) {
    it(`${backend}: 20 workers terminated while they make and close reactors; the process survives`, () => {
      const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/reactor-remake-main.ts', backend, '20'], {
        encoding: 'utf8',
        timeout: hangGuardMs(60_000),
      });
      assert.equal(run.signal, null, `the child died of ${run.signal}; stderr: ${run.stderr}`);
      assert.equal(run.status, 0, `child exit status; stderr: ${run.stderr}`);
      assert.deepEqual(JSON.parse(run.stdout.trim()), { terminated: 20, errors: [] });
    });
  }
});

// Decoding a getaddrinfo answer through koffi.decode / koffi.view aborted the process when Node
// stopped the worker meanwhile (2 of 3 runs of 20 workers; found from outside: 5 of 5 of 100).
describe('worker teardown: workers stopped while they resolve names', () => {
  it('30 workers terminated with 16 lookups in flight each; the process survives', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/resolve-terminated-main.ts', '30'], {
      encoding: 'utf8',
      timeout: hangGuardMs(90_000),
    });
    assert.equal(run.signal, null, `the child died of ${run.signal}; stderr: ${run.stderr}`);
    assert.equal(run.status, 0, `child exit status; stderr: ${run.stderr}`);
    assert.deepEqual(JSON.parse(run.stdout.trim()), { terminated: 30, errors: [] });
  });
});

describe('worker teardown: what a send queue holds', () => {
  it('the duplicates of queued fds and file ranges are closed when the worker is terminated', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'msocket-queued-fds-'));
    const file = path.join(dir, 'passed');
    fs.writeFileSync(file, 'x');
    const fd = fs.openSync(file, 'r');
    const copies = (): number =>
      fs.readdirSync('/proc/self/fd').filter((entry) => {
        try {
          return Number(entry) !== fd && fs.readlinkSync(`/proc/self/fd/${entry}`) === file;
        } catch {
          return false;
        }
      }).length;
    try {
      const worker = startTsWorker(new URL('./fixtures/queued-fds-worker.ts', import.meta.url), { workerData: { fd } });
      const report = (await once(worker, 'message'))[0] as { statuses: string[] };
      assert.deepEqual(report.statuses, ['queued', 'queued', 'queued'], 'each waits in its queue, as a duplicate');
      assert.equal(copies(), 3, 'the queues hold their duplicates');
      assert.equal(await worker.terminate(), 1);
      assert.equal(copies(), 0, 'duplicates left open by the terminated worker');
    } finally {
      fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

function check(shape: string, workerExitCode: number): void {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/worker-teardown-main.ts', shape], {
    encoding: 'utf8',
    timeout: hangGuardMs(30_000),
  });
  assert.equal(run.signal, null, `the child died of ${run.signal}; stderr: ${run.stderr}`);
  assert.equal(run.status, 0, `child exit status; stderr: ${run.stderr}`);
  const result = JSON.parse(run.stdout.trim());
  // terminate() makes a worker exit with code 1, as Node documents.
  assert.deepEqual(result.workerErrors, [], 'the worker threw nothing');
  assert.equal(result.exitCode, workerExitCode, 'the worker ended as the shape says');
  assert.equal(result.fdCount, 4, 'listener, pair, epoll (ring) fd');
  assert.deepEqual(result.stillOpen, [], "the worker's fds were closed when it ended");
  assert.deepEqual(result.anonymousLeft, [], "the worker's unreported fds (an io_uring Reactor's eventfd) were closed too");
  assert.equal(result.accepts, 'ECONNREFUSED', "the worker's listener no longer accepts");
}
