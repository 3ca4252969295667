/**
 * Bad input: every public function, constructor, method and setter of lib/index.ts against wrong
 * types, out-of-range numbers, NaN, detached buffers, zero-length buffers, closed
 * objects and objects of the wrong kind (the table is test/fixtures/rel-bad-input.ts). Each
 * answers with a TypeError / RangeError / SocketError / SocketClosedError naming the argument;
 * the async functions (lib/promises.ts, resolve) answer with a rejected promise, which counts.
 *
 * The table runs in a child process first: an abort inside koffi would show there as an exit
 * code. Only when the child survived does it run here too, one test per case.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { buildTable, checkCase, makeWorld, publicMembers, type BadCase } from './fixtures/rel-bad-input.ts';
import { trackFds } from './helpers/fd.ts';

let fds: ReturnType<typeof trackFds>;
let world: ReturnType<typeof makeWorld>;
let childCrash: string | null = null;
const table: BadCase[] = buildTable();

before(() => {
  fds = trackFds();
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/rel-bad-input.ts'], { encoding: 'utf8', timeout: 30_000 });
  if (run.status !== 0) childCrash = `the table's child exited with ${run.status} (signal ${run.signal}): ${run.stderr.slice(-2000)}`;
  world = makeWorld();
});
after(() => {
  world.dispose();
  fds.assertNoLeak();
});

describe('bad input', () => {
  it('the whole table runs in a child process without an abort (exit code 0)', () => {
    assert.equal(childCrash, null);
  });

  it('covers every public function, constructor, method and setter of lib/index.ts', () => {
    const covered = new Set(table.map((c) => c.member));
    const missing = publicMembers().filter((m) => !covered.has(m));
    assert.deepEqual(missing, [], 'public members with no bad-input case: add them to test/fixtures/rel-bad-input.ts');
  });

  for (const c of table) {
    it(`${c.member}: ${c.what}`, async () => {
      assert.equal(childCrash, null, 'not run in-process: the child crashed on the table');
      await checkCase(c, world);
    });
  }
});
