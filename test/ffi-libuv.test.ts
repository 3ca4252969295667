/**
 * ffi/libuv.ts: koffi's poll handle, its callback replaced by a registered one and driven by
 * libuv's own functions (the abort it prevents is in worker-teardown.test.ts, shapes *-busy and
 * *-churn). Here: that the replacement takes place on this Node (else the protection would be
 * off without a word), and that the handle then behaves: the new callback is called, koffi's is
 * not, stop() stops it, and closing releases everything (no fd left).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import koffi from 'koffi';
import { redirectPoll } from '../ffi/libuv.ts';
import { closeFd, sys } from '../ffi/syscall.ts';
import { EFD_CLOEXEC, EFD_NONBLOCK } from '../ffi/constants.ts';
import { trackFds } from './helpers/fd.ts';

const turn = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

describe('ffi/libuv.ts: redirectPoll', () => {
  it("replaces the callback of koffi's poll handle: the new one runs, koffi's does not, until stopped", async () => {
    const fds = trackFds();
    const efd = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const counter = new Uint8Array(8);
    let koffiCalls = 0;
    const statuses: number[] = [];
    const handle = koffi.node.poll(efd, { readable: true }, (() => koffiCalls++) as never);
    const control = redirectPoll(efd, (status) => {
      statuses.push(status);
      sys.read(efd, counter, 8); // level-triggered: take the signal
    });
    try {
      assert.notEqual(control, null, 'found the handle on this thread’s loop (this Node exports libuv’s API)');
      sys.write(efd, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]), 8);
      // Until it is called, within 5 s (qemu-user, in CI, takes far longer than a loop turn).
      for (let i = 0; i < 250 && statuses.length === 0; i++) await turn();
      assert.deepEqual(statuses, [0], 'called once, with libuv status 0');
      assert.equal(koffiCalls, 0, "koffi's own callback is no longer called");
      control!.stop();
      sys.write(efd, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]), 8);
      for (let i = 0; i < 10; i++) await turn();
      assert.deepEqual(statuses, [0], 'stopped: no more calls');
    } finally {
      handle.close();
      control?.release();
      closeFd(efd);
    }
    await turn();
    fds.assertNoLeak('no fd left');
  });

  it('finds nothing for an fd no poll handle watches (the caller then keeps koffi’s callback)', () => {
    const efd = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    try {
      assert.equal(redirectPoll(efd, () => {}), null);
    } finally {
      closeFd(efd);
    }
  });
});
