/**
 * parseControl on control buffers written here the way the kernel (or qemu-user, issue 16)
 * leaves them: every fd found, counted against maxFds, nothing read outside what was written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SCM_CREDENTIALS, SCM_PIDFD, SCM_RIGHTS, SCM_SECURITY, SOL_SOCKET } from '../ffi/constants.ts';
import { cmsgLen, cmsgSpace, OFFSETOF, SIZEOF } from '../ffi/layouts.ts';
import { controlRoom, parseControl } from '../lib/core/control-messages.ts';

type Message = { level: number; type: number; data: Uint8Array; claimedLength?: number };

/** A control buffer holding `messages` as CMSG_NXTHDR walks them; returns it and its used length. */
function control(messages: Message[]): { view: DataView; length: number } {
  const bytes = new Uint8Array(2048).fill(0xee); // garbage past the end must never be read
  const view = new DataView(bytes.buffer);
  let at = 0;
  for (const m of messages) {
    view.setBigUint64(at + OFFSETOF.cmsghdr.len, BigInt(m.claimedLength ?? cmsgLen(m.data.byteLength)), true);
    view.setInt32(at + OFFSETOF.cmsghdr.level, m.level, true);
    view.setInt32(at + OFFSETOF.cmsghdr.type, m.type, true);
    bytes.set(m.data, at + cmsgLen(0));
    at += cmsgSpace(m.data.byteLength);
  }
  return { view, length: at };
}

const ints = (...values: number[]) => new Uint8Array(Int32Array.from(values).buffer);
const rights = (...fds: number[]): Message => ({ level: SOL_SOCKET, type: SCM_RIGHTS, data: ints(...fds) });
const ucred = (pid: number, uid: number, gid: number): Message => ({ level: SOL_SOCKET, type: SCM_CREDENTIALS, data: ints(pid, uid, gid) });
const pidfd = (fd: number): Message => ({ level: SOL_SOCKET, type: SCM_PIDFD, data: ints(fd) });

test('finds fds, credentials and the pidfd, skipping messages it does not know', () => {
  const label: Message = { level: SOL_SOCKET, type: SCM_SECURITY, data: new TextEncoder().encode('unconfined\0') };
  const other: Message = { level: 41, type: SCM_RIGHTS, data: ints(99) }; // not SOL_SOCKET: no fds
  const { view, length } = control([ucred(1234, 1000, 100), label, other, rights(7, 8), pidfd(9)]);
  assert.deepEqual(parseControl(view, 0, length, 2, false), {
    fds: [7, 8],
    credentials: { pid: 1234, uid: 1000, gid: 100 },
    pidfd: 9,
    extra: [],
    truncated: false,
  });
});

test('counts fds against maxFds: more than maxFds without MSG_CTRUNC is a truncation (qemu-user)', () => {
  const { view, length } = control([rights(3, 4, 5)]);
  assert.equal(parseControl(view, 0, length, 3, false).truncated, false);
  const over = parseControl(view, 0, length, 2, false);
  assert.equal(over.truncated, true);
  assert.deepEqual(over.fds, [3, 4, 5], 'every fd found, so that the caller closes them all');
  assert.equal(parseControl(view, 0, length, 3, true).truncated, true, 'MSG_CTRUNC');
});

test('reads no byte past what the kernel wrote, and stops at a malformed header', () => {
  // cmsg_len claims 5 fds, the buffer holds 2: only those 2 are fds.
  const { view, length } = control([{ ...rights(10, 11), claimedLength: cmsgLen(20) }]);
  assert.deepEqual(parseControl(view, 0, length, 8, false).fds, [10, 11]);
  const broken = control([{ ...rights(12), claimedLength: 3 }, rights(13)]);
  assert.deepEqual(parseControl(broken.view, 0, broken.length, 8, false).fds, []);
  // Credentials cut short are not credentials; a header alone at the end is nothing.
  const short = control([{ ...ucred(1, 2, 3), data: ints(1, 2) }]);
  assert.equal(parseControl(short.view, 0, short.length, 8, false).credentials, null);
  assert.deepEqual(parseControl(view, 0, cmsgLen(0) - 1, 8, false).fds, []);
});

test('a failed pidfd (-ESRCH) is none, and a second pidfd is an extra fd to close', () => {
  const failed = control([pidfd(-3)]);
  assert.equal(parseControl(failed.view, 0, failed.length, 1, false).pidfd, -1);
  const two = control([pidfd(20), pidfd(21)]);
  const found = parseControl(two.view, 0, two.length, 1, false);
  assert.equal(found.pidfd, 20);
  assert.deepEqual(found.extra, [21]);
});

test('controlRoom has room for maxFds fds next to credentials and a pidfd', () => {
  for (const maxFds of [1, 2, 16, 253]) {
    const { length } = control([ucred(1, 2, 3), rights(...new Array(maxFds).fill(5)), pidfd(6)]);
    assert.ok(controlRoom(maxFds) >= length, `maxFds ${maxFds}: ${controlRoom(maxFds)} < ${length}`);
  }
  assert.equal(SIZEOF.ucred, 12);
});
