/**
 * The leak finalizer (lib/lifetime.ts) covers multiplexers too: an epoll multiplexer dropped
 * without close() has its epoll fd closed when collected, with an MSocketLeakWarning. Sockets and
 * listeners: test/listener.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

function leakChild(kinds: string) {
  const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', 'test/fixtures/leak-child.ts', kinds], {
    encoding: 'utf8',
    timeout: 15_000,
  });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout.trim()) as { during: string[]; after: string[]; fdNumbers: number[]; warnings: string[]; ringMapsBefore: number; ringMapsDuring: number; ringMapsAfter: number };
}

describe('leak finalizer', () => {
  it('closes the epoll fd of a multiplexer collected while open, and says so', () => {
    const result = leakChild('multiplexer');
    assert.equal(result.during.length, 1, `one epoll fd while it lived: ${result.during}`);
    assert.deepEqual(result.after, [], 'closed after collection');
    const leaks = result.warnings.filter((w) => w.startsWith('MSocketLeakWarning'));
    assert.equal(leaks.length, 1, result.warnings.join('\n'));
    assert.match(leaks[0], new RegExp(`multiplexer \\(fd ${result.fdNumbers[0]}\\)`));
  });

  it('closes an io_uring multiplexer collected while open: its ring fd and its mappings, and says so', (t) => {
    const result = leakChild('uring-multiplexer');
    if (result.ringMapsDuring === result.ringMapsBefore) {
      // No io_uring here (qemu-user): the multiplexer fell back to epoll, covered above.
      t.diagnostic('io_uring unavailable: the multiplexer ran epoll');
      assert.equal(result.during.length, 1);
      assert.deepEqual(result.after, []);
      return;
    }
    assert.equal(result.during.length, 1, `one ring fd while it lived: ${result.during}`);
    assert.match(result.during[0], /io_uring/);
    assert.deepEqual(result.after, [], 'the ring fd closed after collection');
    assert.equal(result.ringMapsAfter, result.ringMapsBefore, 'no io_uring mapping of ours left (a mapping would keep the ring alive)');
    const leaks = result.warnings.filter((w) => w.startsWith('MSocketLeakWarning'));
    assert.equal(leaks.length, 1, result.warnings.join('\n'));
    assert.match(leaks[0], new RegExp(`multiplexer \\(fd ${result.during[0].split(' ')[0]}\\)`));
  });

  it('says nothing about a poll multiplexer (it owns no fd)', () => {
    const result = leakChild('poll-multiplexer');
    assert.deepEqual(result.after, []);
    assert.deepEqual(result.fdNumbers, [-1]);
    assert.deepEqual(result.warnings, []);
  });
});
