/**
 * Struct layouts and constants of ffi/ against the Linux ABI: first against a table written out
 * here, then against the C compiler's own answers, for this architecture (cc) and for the other
 * supported one (its cross compiler).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as constants from '../ffi/constants.ts';
import { OFFSETOF, SIZEOF, cmsgLen, cmsgSpace } from '../ffi/layouts.ts';
import { ccVersion, compileC, compileTimeValues } from './helpers/cc.ts';

/** sizeof/offsetof on LP64 Linux, identical on x86_64 and aarch64 except for epoll_event. */
const LP64 = {
  sizeof: {
    sockaddr_in: 16,
    sockaddr_in6: 28,
    sockaddr_un: 110,
    sockaddr_storage: 128,
    addrinfo: 48,
    linger: 8,
    iovec: 16,
    pollfd: 8,
    msghdr: 56,
    mmsghdr: 64,
    ip_mreqn: 12,
    ipv6_mreq: 20,
    in_pktinfo: 12,
    in6_pktinfo: 20,
    timespec: 16,
    sock_extended_err: 16,
    cmsghdr: 16,
    ucred: 12,
    io_sqring_offsets: 40,
    io_cqring_offsets: 40,
    io_uring_params: 120,
    io_uring_sqe: 64,
    io_uring_cqe: 16,
    io_uring_getevents_arg: 24,
    io_uring_buf: 16,
    pointer: 8,
    int: 4,
  },
  offsetof: {
    sockaddr_in: { family: 0, port: 2, addr: 4 },
    sockaddr_in6: { family: 0, port: 2, flowinfo: 4, addr: 8, scope_id: 24 },
    sockaddr_un: { family: 0, path: 2 },
    addrinfo: { flags: 0, family: 4, socktype: 8, protocol: 12, addrlen: 16, addr: 24, canonname: 32, next: 40 },
    linger: { onoff: 0, linger: 4 },
    iovec: { base: 0, len: 8 },
    pollfd: { fd: 0, events: 4, revents: 6 },
    msghdr: { name: 0, namelen: 8, iov: 16, iovlen: 24, control: 32, controllen: 40, flags: 48 },
    mmsghdr: { hdr: 0, len: 56 },
    ip_mreqn: { multiaddr: 0, address: 4, ifindex: 8 },
    ipv6_mreq: { multiaddr: 0, interface: 16 },
    in_pktinfo: { ifindex: 0, spec_dst: 4, addr: 8 },
    in6_pktinfo: { addr: 0, ifindex: 16 },
    timespec: { sec: 0, nsec: 8 },
    sock_extended_err: { errno: 0, origin: 4, type: 5, code: 6 },
    cmsghdr: { len: 0, level: 8, type: 12 },
    ucred: { pid: 0, uid: 4, gid: 8 },
    io_sqring_offsets: { head: 0, tail: 4, ring_mask: 8, ring_entries: 12, flags: 16, dropped: 20, array: 24 },
    io_cqring_offsets: { head: 0, tail: 4, ring_mask: 8, ring_entries: 12, overflow: 16, cqes: 20, flags: 24 },
    io_uring_params: { sq_entries: 0, cq_entries: 4, flags: 8, features: 20, sq_off: 40, cq_off: 80 },
    io_uring_sqe: { opcode: 0, flags: 1, ioprio: 2, fd: 4, off: 8, addr: 16, len: 24, poll32_events: 28, user_data: 32, buf_group: 40 },
    io_uring_cqe: { user_data: 0, res: 8, flags: 12 },
    io_uring_getevents_arg: { sigmask: 0, sigmask_sz: 8, ts: 16 },
    io_uring_buf: { addr: 0, len: 8, bid: 12 },
  },
  // CMSG_LEN(4), CMSG_SPACE(4), CMSG_SPACE(12): 16-byte header, data aligned to 8.
  cmsg: { len4: 20, space4: 24, space12: 32 },
};

/** glibc packs struct epoll_event on x86_64 only. */
const ABI: Record<string, typeof LP64 & { epoll_event: { size: number; events: number; data: number } }> = {
  x64: { ...LP64, epoll_event: { size: 12, events: 0, data: 4 } },
  arm64: { ...LP64, epoll_event: { size: 16, events: 0, data: 8 } },
};

test(`SIZEOF and OFFSETOF match the Linux ABI table for ${process.arch}`, () => {
  const abi = ABI[process.arch];
  assert.ok(abi, `no ABI table for ${process.arch}`);
  assert.deepEqual(SIZEOF, { ...abi.sizeof, epoll_event: abi.epoll_event.size });
  assert.deepEqual(OFFSETOF, {
    ...abi.offsetof,
    epoll_event: { events: abi.epoll_event.events, data: abi.epoll_event.data },
  });
  assert.deepEqual(
    { len4: cmsgLen(4), space4: cmsgSpace(4), space12: cmsgSpace(12) },
    abi.cmsg,
  );
});

/**
 * Control-message constants as the kernel defines them (uapi asm-generic/socket.h, used by both
 * x86_64 and aarch64, and include/linux/socket.h). Pinned here because C headers older than
 * Linux 6.5 / glibc 2.39 lack the pidfd ones, so the compiler cross-check below cannot see them.
 */
const KERNEL_SOCKET_CONSTANTS: Record<string, Record<string, number>> = {
  x64: { SO_PASSCRED: 16, SO_PEERCRED: 17, SO_PASSSEC: 34, SO_PASSPIDFD: 76, SCM_RIGHTS: 1, SCM_CREDENTIALS: 2, SCM_SECURITY: 3, SCM_PIDFD: 4, AF_VSOCK: 40 },
  arm64: { SO_PASSCRED: 16, SO_PEERCRED: 17, SO_PASSSEC: 34, SO_PASSPIDFD: 76, SCM_RIGHTS: 1, SCM_CREDENTIALS: 2, SCM_SECURITY: 3, SCM_PIDFD: 4, AF_VSOCK: 40 },
};

test(`control-message constants match the kernel's for ${process.arch}, new ones included`, () => {
  const expected = KERNEL_SOCKET_CONSTANTS[process.arch];
  assert.ok(expected, `no table for ${process.arch}`);
  const actual = Object.fromEntries(Object.keys(expected).map((name) => [name, (constants as Record<string, unknown>)[name]]));
  assert.deepEqual(actual, expected);
  // What the kernel needs for credentials next to fds: CMSG_SPACE(sizeof(struct ucred)).
  assert.equal(cmsgSpace(SIZEOF.ucred), 32);
});

/** C member names are the OFFSETOF keys with the struct's conventional prefix. */
const MEMBER_PREFIX: Record<string, string> = {
  sockaddr_in: 'sin_',
  sockaddr_in6: 'sin6_',
  sockaddr_un: 'sun_',
  addrinfo: 'ai_',
  linger: 'l_',
  iovec: 'iov_',
  msghdr: 'msg_',
  mmsghdr: 'msg_',
  ip_mreqn: 'imr_',
  ipv6_mreq: 'ipv6mr_',
  in_pktinfo: 'ipi_',
  in6_pktinfo: 'ipi6_',
  timespec: 'tv_',
  sock_extended_err: 'ee_',
  cmsghdr: 'cmsg_',
};
const C_TYPE: Record<string, string> = { pointer: 'void *', int: 'int' };
/** Exports of constants.ts that are ours, not the headers'. */
const NOT_IN_C = new Set(['UNIX_PATH_MAX', 'EAI_NAMES']);

/** The numeric constants to check: every number exported by ffi/constants.ts with a C counterpart. */
function numericConstants(): [string, number][] {
  return Object.entries(constants as Record<string, unknown>).filter(
    (e): e is [string, number] => typeof e[1] === 'number' && !NOT_IN_C.has(e[0]),
  );
}

/** One value to ask the C compiler for: `key` names it on both sides, `expr` is its C. */
interface Probe {
  key: string;
  expr: string;
  /** A constant the headers may lack: `#ifdef` tells a missing name (reported) from a value. */
  constant?: string;
}

/** Every value to compare: sizeof, offsetof, CMSG_* and each numeric constant. */
function probes(): Probe[] {
  const list: Probe[] = [];
  for (const name of Object.keys(SIZEOF)) list.push({ key: `sizeof.${name}`, expr: `sizeof(${C_TYPE[name] ?? `struct ${name}`})` });
  for (const [struct, fields] of Object.entries(OFFSETOF)) {
    for (const field of Object.keys(fields)) {
      const member = (MEMBER_PREFIX[struct] ?? '') + field;
      list.push({ key: `offsetof.${struct}.${field}`, expr: `offsetof(struct ${struct}, ${member})` });
    }
  }
  list.push({ key: 'cmsg.len4', expr: 'CMSG_LEN(4)' }, { key: 'cmsg.space4', expr: 'CMSG_SPACE(4)' }, { key: 'cmsg.space12', expr: 'CMSG_SPACE(12)' });
  // Most of these are macros; the enum-valued ones glibc also #defines to themselves.
  for (const [name] of numericConstants()) list.push({ key: `const.${name}`, expr: name, constant: name });
  return list;
}

const HEADERS = `#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <linux/errqueue.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
`;

/** A C program printing `key value` lines (and `missing NAME` for constants the headers lack). */
function probeSource(): string {
  const lines: string[] = [];
  for (const { key, expr, constant } of probes()) {
    if (constant === undefined) lines.push(`P("${key}", ${expr});`);
    else lines.push(`#ifdef ${constant}`, `P("${key}", ${expr});`, '#else', `printf("missing ${constant}\\n");`, '#endif');
  }
  return `${HEADERS}#define P(key, value) printf("%s %lld\\n", key, (long long)(value))
int main(void) {
${lines.join('\n')}
  return 0;
}
`;
}

/** The same values as globals `v<i>` (or `missing_<i>`), for a compiler whose programs we cannot run. */
function globalsSource(list: Probe[]): string {
  const lines: string[] = [];
  list.forEach(({ expr, constant }, i) => {
    if (constant === undefined) lines.push(`const long long v${i} = (long long)(${expr});`);
    else lines.push(`#ifdef ${constant}`, `const long long v${i} = (long long)(${expr});`, '#else', `const long long missing_${i} = 0;`, '#endif');
  });
  return `${HEADERS}${lines.join('\n')}\n`;
}

/** The same keys, from the TS side: this process's koffi layouts. */
function tsValues(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, size] of Object.entries(SIZEOF)) out[`sizeof.${name}`] = size;
  for (const [struct, fields] of Object.entries(OFFSETOF)) {
    for (const [field, offset] of Object.entries(fields)) out[`offsetof.${struct}.${field}`] = offset;
  }
  out['cmsg.len4'] = cmsgLen(4);
  out['cmsg.space4'] = cmsgSpace(4);
  out['cmsg.space12'] = cmsgSpace(12);
  for (const [name, value] of numericConstants()) out[`const.${name}`] = value;
  return out;
}

/** The keys from an ABI table (rather than this process's koffi), plus the constants. */
function tableValues(abi: (typeof ABI)[string]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, size] of Object.entries({ ...abi.sizeof, epoll_event: abi.epoll_event.size })) out[`sizeof.${name}`] = size;
  const offsets = { ...abi.offsetof, epoll_event: { events: abi.epoll_event.events, data: abi.epoll_event.data } };
  for (const [struct, fields] of Object.entries(offsets)) {
    for (const [field, offset] of Object.entries(fields)) out[`offsetof.${struct}.${field}`] = offset;
  }
  out['cmsg.len4'] = abi.cmsg.len4;
  out['cmsg.space4'] = abi.cmsg.space4;
  out['cmsg.space12'] = abi.cmsg.space12;
  for (const [name, value] of numericConstants()) out[`const.${name}`] = value;
  return out;
}

test('cross-check with C compiler: sizeof, offsetof, CMSG_* and every constant', (t) => {
  // The machine image ships cc and .ci/run installs one if it is missing: without a compiler the
  // layouts would go unchecked against the real headers, so that is a failure, not a skip.
  const cc = ccVersion();
  assert.ok(cc !== null, 'no C compiler: `cc --version` failed. Install one (apt-get install gcc) to check the layouts against the C headers');
  t.diagnostic(`compiler: ${cc}`);
  const stdout = compileC(probeSource());
  assert.ok(stdout !== null);
  const fromC: Record<string, number> = {};
  const missing: string[] = [];
  for (const line of stdout.trim().split('\n')) {
    const [key, value] = line.split(' ');
    if (key === 'missing') missing.push(value);
    else fromC[key] = Number(value);
  }
  const expected = tsValues();
  for (const name of missing) delete expected[`const.${name}`];
  if (missing.length > 0) t.diagnostic(`not defined by these headers, so not checked: ${missing.join(', ')}`);
  t.diagnostic(`${Object.keys(fromC).length} values compared`);
  // One deepEqual so that a failure lists every mismatching key at once.
  assert.deepEqual(expected, fromC);
});

/**
 * The other supported ABI, from whichever side this runs on: its cross compiler (gcc's
 * target-prefixed driver, which Debian ships for both directions) compiles the same values to
 * assembly, nothing is run. So the aarch64 table and the constants are checked against the
 * aarch64 headers on an x86_64 machine without emulation, and the x86_64 ones from the aarch64
 * suite. The library's own koffi layouts for an ABI are checked by the two tests above, run on
 * that architecture (natively, or under qemu-user: see .ci/arm64).
 */
const OTHER_ABI: Record<string, { arch: string; compiler: string; install: string }> = {
  x64: { arch: 'arm64', compiler: 'aarch64-linux-gnu-gcc', install: 'apt-get install gcc-aarch64-linux-gnu' },
  arm64: { arch: 'x64', compiler: 'x86_64-linux-gnu-gcc', install: 'apt-get install gcc-x86-64-linux-gnu' },
};

test(`cross-check the other ABI (${OTHER_ABI[process.arch]?.arch}) with its cross compiler: sizeof, offsetof, CMSG_* and every constant`, (t) => {
  const other = OTHER_ABI[process.arch];
  assert.ok(other, `no other ABI known for ${process.arch}`);
  const version = ccVersion(other.compiler);
  assert.ok(version !== null, `no ${other.compiler}: install it (${other.install}) to check the ${other.arch} layouts against its headers`);
  t.diagnostic(`compiler: ${version}`);
  const list = probes();
  const values = compileTimeValues(other.compiler, globalsSource(list));
  const fromC: Record<string, number> = {};
  const missing: string[] = [];
  list.forEach(({ key, constant }, i) => {
    const value = values.get(`v${i}`);
    if (value !== undefined) fromC[key] = value;
    else if (constant !== undefined && values.has(`missing_${i}`)) missing.push(constant);
    else assert.fail(`${key}: no value in ${other.compiler}'s assembly`);
  });
  const expected = tableValues(ABI[other.arch]);
  for (const name of missing) delete expected[`const.${name}`];
  if (missing.length > 0) t.diagnostic(`not defined by these headers, so not checked: ${missing.join(', ')}`);
  t.diagnostic(`${Object.keys(fromC).length} values compared`);
  assert.deepEqual(expected, fromC);
});
