/**
 * worker_threads: several workers, each with its own Multiplexer and its own Listener on one port
 * (SO_REUSEPORT), all serve connections; nothing is shared; they end cleanly. Drives the very code
 * of examples/workers.ts in this process (so that the fd check sees the workers' fds), and runs the
 * example itself as a command.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runWorkers, type WorkerReport } from '../examples/workers.ts';
import { trackFds } from './helpers/fd.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

const EXAMPLE = fileURLToPath(new URL('../examples/workers.ts', import.meta.url));

/** Bytes the example's clients send: one line `hello N\n` per connection. */
function bytesSent(connections: number): number {
  let total = 0;
  for (let i = 0; i < connections; i++) total += `hello ${i}\n`.length;
  return total;
}

function checkReports(reports: WorkerReport[], workers: number, connections: number): void {
  assert.equal(reports.length, workers);
  for (const r of reports) {
    assert.equal(r.exitCode, 0, `worker ${r.index} exited cleanly`);
    // 60 connections over 3 listeners: the kernel's hash leaves one empty with odds ~1e-10.
    assert.ok(r.served >= 1, `worker ${r.index} served ${r.served} connections`);
  }
  assert.equal(reports.reduce((sum, r) => sum + r.served, 0), connections, 'every connection was served exactly once');
  assert.equal(reports.reduce((sum, r) => sum + r.bytes, 0), bytesSent(connections), 'every byte was echoed once');
  // Nothing shared: each worker is its own thread with its own listener, made by its own koffi.
  assert.equal(new Set(reports.map((r) => r.threadId)).size, workers);
  assert.equal(new Set(reports.map((r) => r.listenerFd)).size, workers);
}

describe('worker_threads', () => {
  it('3 workers, epoll: each owns a multiplexer and a listener on one port, all serve, all end cleanly', async () => {
    const opened = trackFds();
    const reports = await runWorkers({ workers: 3, connections: 60, backend: 'epoll' });
    checkReports(reports, 3, 60);
    assert.equal(new Set(reports.map((r) => r.multiplexerFd)).size, 3, 'one epoll fd per worker');
    for (const r of reports) assert.ok(r.multiplexerFd >= 0);
    opened.assertNoLeak('the workers closed every fd they opened');
  });

  it('2 workers, poll backend: the same, with no kernel object per multiplexer', async () => {
    const opened = trackFds();
    const reports = await runWorkers({ workers: 2, connections: 40, backend: 'poll' });
    checkReports(reports, 2, 40);
    for (const r of reports) assert.equal(r.multiplexerFd, -1);
    opened.assertNoLeak('the workers closed every fd they opened');
  });

  it('idle workers blocked in wait(-1), with no timeout, stop as soon as their wakers wake them', async () => {
    const opened = trackFds();
    const reports = await runWorkers({ workers: 2, connections: 0, backend: 'epoll' });
    assert.deepEqual(reports.map((r) => [r.exitCode, r.served, r.bytes]), [[0, 0, 0], [0, 0, 0]]);
    opened.assertNoLeak('the workers closed their fds, and we our duplicates of their wakers');
  });

  it('runs as a command: prints how many connections each worker served', () => {
    // A bound, not a timing: under qemu-user the process and its two workers each start tsx and
    // koffi, about 6 s of CPU apiece.
    const result = spawnSync(process.execPath, ['--import', 'tsx', EXAMPLE, '--workers', '2', '--connections', '30'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(result.status, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines.length, 2, result.stdout);
    let total = 0;
    lines.forEach((line, i) => {
      const match = /^worker (\d+) served (\d+) connections$/.exec(line);
      assert.ok(match, line);
      assert.equal(Number(match[1]), i);
      assert.ok(Number(match[2]) >= 1, line);
      total += Number(match[2]);
    });
    assert.equal(total, 30);
  });

  it('rejects bad arguments with a usage message and exit code 2', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', EXAMPLE, '--workers', '0'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /usage: workers/);
    assert.equal(result.stdout, '');
  });
});
