/**
 * Soak: 20,000 connect / echo / close cycles (m-socket server and clients, 100 at a time) in a
 * child run with --expose-gc, bounded by count and by time (60 s). At the end the child's fd
 * count is back at its baseline and its RSS near it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { trackFds } from './helpers/fd.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

const CYCLES = 20_000;
const LIMIT_MS = 60_000;
const MiB = 2 ** 20;

describe('soak', () => {
  it(`${CYCLES} connect / echo / close cycles in under a minute leave fds and RSS at baseline`, (t) => {
    const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', 'test/fixtures/rel-soak.ts', String(CYCLES), '100', String(LIMIT_MS)], {
      encoding: 'utf8',
      timeout: LIMIT_MS + 30_000,
    });
    assert.equal(run.status, 0, run.stderr.slice(-3000));
    const r = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    t.diagnostic(
      `${r.cycles} cycles in ${r.elapsedMs} ms (${r.rate}/s); fds ${r.fdsBefore} -> ${r.fdsAfter} -> ${r.fdsAfterSecondRound}; ` +
        `RSS ${(r.rssBefore / MiB).toFixed(1)} -> ${(r.rssAfter / MiB).toFixed(1)} MiB, after a second round ${(r.rssAfterSecondRound / MiB).toFixed(1)} MiB`,
    );
    assert.deepEqual(r.errors, []);
    assert.equal(r.cycles, CYCLES, `only ${r.cycles} cycles in ${LIMIT_MS} ms (${r.rate}/s)`);
    assert.equal(r.fdsAfter, r.fdsBefore, 'fd count back at baseline');
    assert.equal(r.fdsAfterSecondRound, r.fdsBefore);
    assert.ok(r.rssAfter - r.rssBefore < 64 * MiB, `RSS grew by ${((r.rssAfter - r.rssBefore) / MiB).toFixed(1)} MiB`);
    // A leak grows again in a second round; a high-water mark does not.
    assert.ok(r.rssAfterSecondRound - r.rssAfter < 16 * MiB, `RSS grew again by ${((r.rssAfterSecondRound - r.rssAfter) / MiB).toFixed(1)} MiB in a second round`);
  });
});
