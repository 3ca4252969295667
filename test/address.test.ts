/**
 * lib/address.ts: literal parsing against node:net's isIP, formatting against what Node prints,
 * validation errors, sockaddr codecs (byte layout, round trips) and the real kernel's view
 * (bind + getsockname, and an IPv4 client accepted on a dual-stack IPv6 socket).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { decodeSockaddr, encodeSockaddr } from '../lib/core/sockaddr.ts';
import {
  formatAddress,
  formatIPv4,
  formatIPv6,
  inetAddress,
  isIP,
  isLoopback,
  isUnspecified,
  parseIPv4,
  parseIPv6,
  unixAddress,
  type SocketAddress,
} from '../lib/core/address.ts';
import { AF_INET, AF_INET6, AF_UNIX, IPPROTO_IPV6, IPV6_V6ONLY, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM } from '../ffi/constants.ts';
import { OFFSETOF, SIZEOF } from '../ffi/layouts.ts';
import { ifNameToIndex, sys, WOULD_BLOCK } from '../ffi/syscall.ts';

const RUNS = { numRuns: 1000 };
/** Node's own normaliser (libuv inet_pton + inet_ntop): the oracle for formatIPv6. */
const nodePrints = (address: string) => new net.SocketAddress({ address, family: 'ipv6' }).address;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

// ---------------------------------------------------------------------------------------------
// Literals

const IPV4_VALID: [string, number[]][] = [
  ['0.0.0.0', [0, 0, 0, 0]],
  ['127.0.0.1', [127, 0, 0, 1]],
  ['255.255.255.255', [255, 255, 255, 255]],
  ['1.20.199.249', [1, 20, 199, 249]],
];
const IPV4_INVALID = ['1.2.3', '1.2.3.4.5', '256.0.0.1', '1.2.3.256', '01.2.3.4', '1.2.3.04', '00.0.0.0', '1..2.3', '1.2.3.', '.1.2.3',
  '', ' 1.2.3.4', '1.2.3.4 ', '1.2.3.4%eth0', '1.2.3.-4', '1.2.3.1000', '0x1.2.3.4', '1.2.3.4\n', '١.2.3.4'];

test('parseIPv4 accepts strict dotted quads and returns their 4 bytes', () => {
  for (const [text, bytes] of IPV4_VALID) {
    assert.deepEqual(parseIPv4(text), new Uint8Array(bytes), text);
    assert.equal(isIP(text), 4, text);
    assert.equal(net.isIP(text), 4, text);
  }
});

test('parseIPv4 rejects what net.isIPv4 rejects (leading zeros, short, out of range, zones)', () => {
  for (const text of IPV4_INVALID) {
    assert.equal(parseIPv4(text), null, text);
    assert.equal(net.isIPv4(text), false, text);
  }
});

const IPV6_VALID: [string, string, string | null][] = [
  // text, bytes in hex, zone
  ['::', '0'.repeat(32), null],
  ['::1', '0'.repeat(31) + '1', null],
  ['1::', '0001' + '0'.repeat(28), null],
  ['2001:DB8::FF00:42:8329', '20010db8000000000000ff0000428329', null],
  ['2001:0db8:0000:0000:0000:ff00:0042:8329', '20010db8000000000000ff0000428329', null],
  ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008', null],
  ['1:2:3:4:5:6:7::', '00010002000300040005000600070000', null],
  ['::2:3:4:5:6:7:8', '00000002000300040005000600070008', null],
  ['::ffff:1.2.3.4', '00000000000000000000ffff01020304', null],
  ['::1.2.3.4', '00000000000000000000000001020304', null],
  ['1:2:3:4:5:6:1.2.3.4', '00010002000300040005000601020304', null],
  ['1::5:6:255.255.255.0', '000100000000000000050006ffffff00', null],
  ['fe80::1%eth0', 'fe800000000000000000000000000001', 'eth0'],
  ['fe80::1%1', 'fe800000000000000000000000000001', '1'],
  ['fe80::%a.b:c-D', 'fe800000000000000000000000000000', 'a.b:c-D'],
  ['::ffff:1.2.3.4%lo', '00000000000000000000ffff01020304', 'lo'],
];
const IPV6_INVALID = [':::', '1::2::3', '::1::', ':1::', '1::2:', ':', '1', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8::',
  '::1:2:3:4:5:6:7:8', '12345::', 'g::', '::1.2.3', '::1.2.3.4.5', '::256.1.1.1', '::01.2.3.4', '1.2.3.4::', '::1.2.3.4:1',
  '1:2:3:4:5:6:7:1.2.3.4', '1:2:3:4:5:6::1.2.3.4', 'fe80::1%', 'fe80::1%eth 0', 'fe80::1%a%b', '%eth0', '[::1]', '::1 ', ''];

test('parseIPv6 accepts net.isIPv6 literals: "::", dotted tails, zones, uppercase hex', () => {
  for (const [text, bytes, zone] of IPV6_VALID) {
    const parsed = parseIPv6(text);
    assert.ok(parsed, text);
    assert.equal(hex(parsed.bytes), bytes, text);
    assert.equal(parsed.zone, zone, text);
    assert.equal(isIP(text), 6, text);
    assert.equal(net.isIP(text), 6, text);
  }
});

test('parseIPv6 rejects what net.isIPv6 rejects', () => {
  for (const text of IPV6_INVALID) {
    assert.equal(parseIPv6(text), null, text);
    assert.equal(isIP(text), 0, text);
    assert.equal(net.isIP(text), 0, text);
  }
});

test('isIP coerces non-strings the way net.isIP does', () => {
  for (const value of [123, null, undefined, { toString: () => '::1' }, ['1.2.3.4']]) {
    assert.equal(isIP(value as string), net.isIP(value as string), String(value));
  }
});

// ---------------------------------------------------------------------------------------------
// Formatting

const FORMAT_CASES: [string, string][] = [
  // RFC 5952 section 4 examples
  ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
  ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
  ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group is not compressed
  ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run wins
  ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first run on ties
  ['2001:DB8::AB', '2001:db8::ab'],
  ['0:0:0:0:0:0:0:0', '::'],
  ['0:0:0:0:0:0:0:1', '::1'],
  ['1:0:0:0:0:0:0:0', '1::'],
  ['0:0:1:0:0:0:0:0', '0:0:1::'],
  // Dotted tails, as libuv (and so Node) prints them
  ['0:0:0:0:0:ffff:102:304', '::ffff:1.2.3.4'],
  ['::ffff:0:0', '::ffff:0.0.0.0'],
  ['::102:304', '::1.2.3.4'], // IPv4-compatible: six zero groups
  ['::0.0.1.0', '::100'], // seven zero groups: plain hex
  ['0:0:0:0:0:0:1:0', '::0.1.0.0'],
  ['::ffff:0:102:304', '::ffff:0:102:304'], // SIIT form: no dotted tail
  ['64:ff9b::1.2.3.4', '64:ff9b::102:304'],
];

test('formatIPv6 prints RFC 5952 text exactly as Node does', () => {
  for (const [text, expected] of FORMAT_CASES) {
    const parsed = parseIPv6(text);
    assert.ok(parsed, text);
    assert.equal(formatIPv6(parsed.bytes), expected, text);
    assert.equal(nodePrints(text), expected, `Node itself prints ${text} as ${expected}`);
  }
});

test('formatIPv4 and formatIPv6 read at an offset and check it', () => {
  const bytes = new Uint8Array(22);
  bytes.set([10, 0, 0, 7], 2);
  bytes[21] = 1;
  assert.equal(formatIPv4(bytes, 2), '10.0.0.7');
  assert.equal(formatIPv6(bytes, 6), '::1');
  assert.equal(formatIPv4(bytes, 18), '0.0.0.1');
  assert.throws(() => formatIPv4(bytes, 19), { code: 'ERR_OUT_OF_RANGE', message: /"offset"/ });
  assert.throws(() => formatIPv6(bytes, 7), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => formatIPv6(bytes, -1), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => formatIPv4(bytes, 0.5), { code: 'ERR_OUT_OF_RANGE' });
});

test('formatAddress gives short text for logs', () => {
  assert.equal(formatAddress({ family: 'IPv4', address: '1.2.3.4', port: 80 }), '1.2.3.4:80');
  assert.equal(formatAddress({ family: 'IPv6', address: '::1', port: 80 }), '[::1]:80');
  assert.equal(formatAddress({ family: 'IPv6', address: 'fe80::1', port: 8, scopeId: 2 }), '[fe80::1%2]:8');
  assert.equal(formatAddress({ family: 'unix', path: '/tmp/x' }), 'unix /tmp/x');
  assert.equal(formatAddress({ family: 'unix', path: '\0abstract' }), 'unix @abstract');
  assert.equal(formatAddress({ family: 'unix', path: '' }), 'unix (unnamed)');
});

test('isUnspecified and isLoopback', () => {
  const at = (address: string) => inetAddress(address, 0);
  assert.equal(isUnspecified(at('0.0.0.0')), true);
  assert.equal(isUnspecified(at('0:0::0')), true);
  assert.equal(isUnspecified(at('::1')), false);
  assert.equal(isLoopback(at('127.8.9.10')), true);
  assert.equal(isLoopback(at('0::1')), true);
  assert.equal(isLoopback(at('::ffff:127.0.0.1')), true);
  assert.equal(isLoopback(at('128.0.0.1')), false);
  assert.equal(isLoopback(at('::2')), false);
});

// ---------------------------------------------------------------------------------------------
// Validation

test('inetAddress validates and normalises host and port', () => {
  assert.deepEqual(inetAddress('127.0.0.1', 80), { family: 'IPv4', address: '127.0.0.1', port: 80 });
  assert.deepEqual(inetAddress('0:0:0:0:0:0:0:1', 0), { family: 'IPv6', address: '::1', port: 0 });
  assert.deepEqual(inetAddress('2001:DB8::A', 65535), { family: 'IPv6', address: '2001:db8::a', port: 65535 });
  assert.deepEqual(inetAddress('::FFFF:7f00:1', 1), { family: 'IPv6', address: '::ffff:127.0.0.1', port: 1 });
  assert.deepEqual(inetAddress('fe80::1%7', 9), { family: 'IPv6', address: 'fe80::1', port: 9, scopeId: 7 });
  assert.deepEqual(inetAddress('fe80::1%0', 9), { family: 'IPv6', address: 'fe80::1', port: 9 });
  assert.deepEqual(inetAddress('fe80::1%lo', 9), { family: 'IPv6', address: 'fe80::1', port: 9, scopeId: ifNameToIndex('lo') });
});

test('inetAddress rejects bad ports, naming "port"', () => {
  for (const port of [70000, -1, 1.5, NaN, Infinity, 65536]) {
    assert.throws(() => inetAddress('::1', port), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: /"port".*65535/ }, String(port));
  }
  for (const port of ['80', undefined, null, 80n]) {
    assert.throws(() => inetAddress('::1', port), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /"port"/ }, String(port));
  }
  assert.throws(() => inetAddress('::1', -1, 'options'), { message: /"options\.port"/ });
});

test('inetAddress rejects hosts that are not IP literals, naming "host" and suggesting resolve()', () => {
  for (const host of ['1.2.3', 'localhost', '', '[::1]', '::1::', '1.2.3.4%lo', '01.1.1.1']) {
    assert.throws(() => inetAddress(host, 80), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /"host" is not an IP address literal.*resolve\(\)/ }, host);
  }
  for (const host of [undefined, null, 1234, ['::1']]) {
    assert.throws(() => inetAddress(host, 80), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /"host"/ });
  }
  assert.throws(() => inetAddress('1.2.3', 80, 'options'), { message: /"options\.host"/ });
  assert.throws(() => inetAddress('fe80::1%no-such-if0', 80), { code: 'ERR_INVALID_ARG_VALUE', message: /"host".*no-such-if0.*ENODEV/ });
  assert.throws(() => inetAddress('fe80::1%4294967296', 80), { code: 'ERR_INVALID_ARG_VALUE', message: /"host"/ });
});

test('unixAddress: filesystem paths up to 107 UTF-8 bytes, abstract names up to 108', () => {
  const ok = '/' + 'x'.repeat(106);
  assert.deepEqual(unixAddress(ok), { family: 'unix', path: ok });
  assert.throws(() => unixAddress(ok + 'y'), { code: 'ERR_INVALID_ARG_VALUE', message: /"path" is 108 bytes.*at most 107 .*108/ });
  // Multibyte: 'é' is 2 bytes, so 53 of them plus '/' is 107 bytes but only 54 characters.
  const accents = '/' + 'é'.repeat(53);
  assert.equal(unixAddress(accents).path, accents);
  assert.throws(() => unixAddress(accents + 'x'), { message: /108 bytes/ });
  assert.throws(() => unixAddress('/' + '😀'.repeat(27)), { message: /109 bytes/ }); // 4 bytes each
  const abstract = '\0' + 'a'.repeat(107);
  assert.equal(unixAddress(abstract).path, abstract);
  assert.equal(unixAddress('\0').path, '\0');
  assert.throws(() => unixAddress(abstract + 'b'), { message: /109 bytes.*at most 108/ });
  assert.throws(() => unixAddress('/tmp/a\0b'), { code: 'ERR_INVALID_ARG_VALUE', message: /NUL/ });
  assert.throws(() => unixAddress('\0a\0b'), { code: 'ERR_INVALID_ARG_VALUE', message: /NUL/ });
  assert.throws(() => unixAddress(''), { code: 'ERR_INVALID_ARG_VALUE', message: /"path" must not be empty/ });
  assert.throws(() => unixAddress(Buffer.from('/x')), { code: 'ERR_INVALID_ARG_TYPE', message: /"path"/ });
  assert.throws(() => unixAddress('/' + 'x'.repeat(200), 'options.path'), { message: /"options\.path" is 201 bytes/ });
});

// ---------------------------------------------------------------------------------------------
// sockaddr codecs

test('encodeSockaddr lays out sockaddr_in / sockaddr_in6 / sockaddr_un as the kernel expects', () => {
  const buf = new Uint8Array(SIZEOF.sockaddr_storage).fill(0xee);
  assert.equal(encodeSockaddr({ family: 'IPv4', address: '127.0.0.1', port: 0x1234 }, buf), 16);
  assert.equal(new DataView(buf.buffer).getUint16(OFFSETOF.sockaddr_in.family, true), AF_INET);
  assert.deepEqual([...buf.subarray(OFFSETOF.sockaddr_in.port, OFFSETOF.sockaddr_in.port + 2)], [0x12, 0x34]);
  assert.deepEqual([...buf.subarray(OFFSETOF.sockaddr_in.addr, OFFSETOF.sockaddr_in.addr + 4)], [127, 0, 0, 1]);
  assert.deepEqual([...buf.subarray(8, 16)], [0, 0, 0, 0, 0, 0, 0, 0], 'sin_zero is zeroed');
  assert.equal(buf[16], 0xee, 'nothing past the sockaddr is touched');

  buf.fill(0xee);
  const v6 = { family: 'IPv6', address: 'fe80::1', port: 443, flowinfo: 0x12345, scopeId: 3 } as const;
  assert.equal(encodeSockaddr(v6, buf), 28);
  const view = new DataView(buf.buffer);
  assert.equal(view.getUint16(OFFSETOF.sockaddr_in6.family, true), AF_INET6);
  assert.equal(view.getUint16(OFFSETOF.sockaddr_in6.port, false), 443);
  assert.equal(view.getUint32(OFFSETOF.sockaddr_in6.flowinfo, false), 0x12345);
  assert.equal(view.getUint32(OFFSETOF.sockaddr_in6.scope_id, true), 3);
  assert.equal(hex(buf.subarray(OFFSETOF.sockaddr_in6.addr, OFFSETOF.sockaddr_in6.addr + 16)), 'fe800000000000000000000000000001');
  assert.deepEqual(decodeSockaddr(buf, 28), v6);

  buf.fill(0xee);
  assert.equal(encodeSockaddr({ family: 'unix', path: '/tmp/é' }, buf), OFFSETOF.sockaddr_un.path + 8);
  assert.equal(view.getUint16(OFFSETOF.sockaddr_un.family, true), AF_UNIX);
  assert.equal(hex(buf.subarray(2, 10)), Buffer.from('/tmp/é\0').toString('hex'));
  assert.equal(encodeSockaddr({ family: 'unix', path: '\0ab' }, buf), 5, 'abstract: no trailing NUL');
  assert.equal(encodeSockaddr({ family: 'unix', path: '' }, buf), 2, 'unnamed');
  assert.equal(encodeSockaddr({ family: 'unix', path: '/' + 'x'.repeat(106) }, buf), 110);
  assert.equal(encodeSockaddr({ family: 'unix', path: '\0' + 'x'.repeat(107) }, buf), 110);
});

test('encodeSockaddr checks its inputs', () => {
  const buf = new Uint8Array(128);
  assert.throws(() => encodeSockaddr({ family: 'IPv4', address: '::1', port: 1 }, buf), { code: 'ERR_INVALID_ARG_VALUE', message: /"addr.address"/ });
  assert.throws(() => encodeSockaddr({ family: 'IPv6', address: '1.2.3.4', port: 1 }, buf), { code: 'ERR_INVALID_ARG_VALUE' });
  assert.throws(() => encodeSockaddr({ family: 'IPv6', address: 'fe80::1%lo', port: 1 }, buf), { message: /zone.*scopeId/ });
  assert.throws(() => encodeSockaddr({ family: 'IPv4', address: '1.2.3.4', port: 65536 }, buf), { code: 'ERR_OUT_OF_RANGE', message: /"addr.port"/ });
  assert.throws(() => encodeSockaddr({ family: 'unix', path: '/' + 'x'.repeat(107) }, buf), { message: /108 bytes/ });
  assert.throws(() => encodeSockaddr({ family: 'ipx' } as unknown as SocketAddress, buf), { code: 'ERR_INVALID_ARG_VALUE', message: /"addr.family"/ });
  assert.throws(() => encodeSockaddr({ family: 'IPv4', address: '1.2.3.4', port: 1 }, new Uint8Array(127)), { message: /"into".*128.*127/ });
});

test('decodeSockaddr: Unix path ends, abstract names, unnamed, unknown families, bad lengths', () => {
  const buf = new Uint8Array(128);
  const put = (path: string, trailer = '') => {
    buf.fill(0);
    buf[0] = AF_UNIX;
    return 2 + Buffer.from(path + trailer).copy(buf, 2);
  };
  put('/tmp/sock', '\0garbage');
  assert.deepEqual(decodeSockaddr(buf, 2 + 10), { family: 'unix', path: '/tmp/sock' }, 'ends at the NUL');
  const n = put('/tmp/sock');
  assert.deepEqual(decodeSockaddr(buf, n), { family: 'unix', path: '/tmp/sock' }, 'no NUL within length');
  assert.deepEqual(decodeSockaddr(buf, 6), { family: 'unix', path: '/tmp' }, 'never reads past length');
  const m = put('\0a\0b');
  assert.deepEqual(decodeSockaddr(buf, m), { family: 'unix', path: '\0a\0b' }, 'abstract names span length - 2 bytes');
  assert.deepEqual(decodeSockaddr(buf, 2), { family: 'unix', path: '' });
  assert.deepEqual(decodeSockaddr(buf, 0), { family: 'unix', path: '' });
  const bom = put('\uFEFFsock'); // a relative path may start with U+FEFF
  assert.deepEqual(decodeSockaddr(buf, bom), { family: 'unix', path: '\uFEFFsock' }, 'a leading BOM is data, not stripped');

  buf[0] = 17; // AF_PACKET
  assert.throws(() => decodeSockaddr(buf, 20), { name: 'TypeError', message: /family 17/ });
  buf[0] = AF_INET;
  assert.throws(() => decodeSockaddr(buf, 15), { code: 'ERR_OUT_OF_RANGE', message: /at least 16/ });
  buf[0] = AF_INET6;
  assert.throws(() => decodeSockaddr(buf, 27), { code: 'ERR_OUT_OF_RANGE', message: /at least 28/ });
  assert.throws(() => decodeSockaddr(buf, 129), { code: 'ERR_OUT_OF_RANGE', message: /"length"/ });
  assert.throws(() => decodeSockaddr(buf, -1), { code: 'ERR_OUT_OF_RANGE' });
});

test('decodeSockaddr honours the byteOffset of a view', () => {
  const backing = new Uint8Array(256);
  const view = backing.subarray(64, 64 + 128);
  const len = encodeSockaddr({ family: 'IPv4', address: '10.1.2.3', port: 8080 }, view);
  assert.equal(backing[64], AF_INET);
  assert.deepEqual(decodeSockaddr(view, len), { family: 'IPv4', address: '10.1.2.3', port: 8080 });
});

// ---------------------------------------------------------------------------------------------
// Properties

const HEXISH = [...'0123456789abcdefABCDEF'];
const ALPHABET = [...HEXISH, ':', '.', '%'];
/** Strings with the shape of IP literals: groups, separators, dotted tails and zones, slightly wrong. */
const ipShaped = fc
  .array(
    fc.oneof(
      fc.string({ unit: fc.constantFrom(...HEXISH), maxLength: 5 }),
      fc.constantFrom(':', ':', '::', ':::', '.'),
      fc.tuple(fc.integer({ min: -1, max: 300 }), fc.boolean()).map(([n, zero]) => (zero ? '0' : '') + (n < 0 ? '' : String(n))),
      fc.string({ unit: fc.constantFrom('%', 'e', 't', 'h', '0', '-', '.', ':', '_', ' ', 'Z'), minLength: 1, maxLength: 4 }),
    ),
    { maxLength: 18 },
  )
  .map((parts) => parts.join(''));
/** IPv6-like literals: 0-9 groups (some too long or empty), zero to two '::', maybe a dotted tail and a zone. */
const often = <T,>(usual: fc.Arbitrary<T>, odd: fc.Arbitrary<T>) => fc.oneof({ arbitrary: usual, weight: 9 }, { arbitrary: odd, weight: 1 });
const structured = fc
  .record({
    groups: fc.array(often(fc.string({ unit: fc.constantFrom(...HEXISH), minLength: 1, maxLength: 4 }), fc.string({ unit: fc.constantFrom(...HEXISH), maxLength: 5 })), { maxLength: 9 }),
    gaps: often(fc.array(fc.nat(9), { maxLength: 1 }), fc.array(fc.nat(9), { minLength: 2, maxLength: 2 })),
    tail: fc.option(fc.array(often(fc.nat(255).map(String), fc.constantFrom('256', '01', '00', '', '999')), { minLength: 3, maxLength: 5 }).map((p) => p.join('.'))),
    zone: fc.option(often(fc.string({ unit: fc.constantFrom(...'eth0-.:Z'), minLength: 1, maxLength: 4 }), fc.string({ unit: fc.constantFrom(...'e_ %'), maxLength: 2 })).map((z) => '%' + z)),
  })
  .map(({ groups, gaps, tail, zone }) => {
    let text = groups.join(':');
    for (const gap of gaps) {
      const head = groups.slice(0, gap).join(':');
      text = head + '::' + text.slice(head.length + (gap > 0 && gap < groups.length ? 1 : 0));
    }
    if (tail !== null) text += (text === '' || text.endsWith(':') ? '' : ':') + tail;
    return text + (zone ?? '');
  });
/** Valid addresses with one random edit. */
const mutated = fc
  .tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.nat(), fc.constantFrom(...ALPHABET, ''), fc.boolean())
  .map(([bytes, at, ch, v4]) => {
    const text = v4 ? formatIPv4(bytes) : formatIPv6(bytes);
    const i = at % (text.length + 1);
    return text.slice(0, i) + ch + text.slice(i + (ch === '' ? 1 : at % 2));
  });

test('property: parse(format(bytes)) gives the bytes back, and net.isIP agrees on the text', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (bytes) => {
      const text = formatIPv4(bytes);
      assert.deepEqual(parseIPv4(text), bytes);
      assert.equal(isIP(text), 4);
      assert.equal(net.isIP(text), 4);
    }),
    RUNS,
  );
  // Bias towards zero groups so that "::" compression and the dotted forms are exercised.
  const group = fc.oneof(fc.constant([0, 0]), fc.constant([0xff, 0xff]), fc.tuple(fc.nat(255), fc.nat(255)));
  const v6 = fc.oneof(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.array(group, { minLength: 8, maxLength: 8 }).map((g) => new Uint8Array(g.flat())));
  fc.assert(
    fc.property(v6, (bytes) => {
      const text = formatIPv6(bytes);
      assert.deepEqual(parseIPv6(text), { bytes, zone: null });
      assert.equal(isIP(text), 6);
      assert.equal(net.isIP(text), 6);
    }),
    { numRuns: 3000 },
  );
});

test('property: formatIPv6 prints what Node prints (net.SocketAddress normalises with libuv)', () => {
  const group = fc.oneof(fc.constant([0, 0]), fc.constant([0xff, 0xff]), fc.tuple(fc.nat(255), fc.nat(255)));
  const v6 = fc.oneof(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.array(group, { minLength: 8, maxLength: 8 }).map((g) => new Uint8Array(g.flat())));
  fc.assert(
    fc.property(v6, fc.boolean(), (bytes, uncompressed) => {
      const full = Array.from({ length: 8 }, (_, g) => ((bytes[2 * g] << 8) | bytes[2 * g + 1]).toString(16)).join(':');
      const ours = formatIPv6(bytes);
      assert.equal(ours, nodePrints(uncompressed ? full : ours));
    }),
    { numRuns: 3000 },
  );
});

test('property: isIP agrees with net.isIP on strings over the IP alphabet', () => {
  const agree = (text: string) => assert.equal(isIP(text), net.isIP(text), JSON.stringify(text));
  fc.assert(fc.property(fc.string({ unit: fc.constantFrom(...ALPHABET), maxLength: 45 }), agree), { numRuns: 3000 });
  fc.assert(fc.property(ipShaped, agree), { numRuns: 3000 });
  fc.assert(fc.property(structured, agree), { numRuns: 5000 });
  fc.assert(fc.property(mutated, agree), { numRuns: 5000 });
  // parseIPv4/parseIPv6 agree with net's per-family checks too.
  fc.assert(
    fc.property(fc.oneof(ipShaped, structured, mutated), (text) => {
      assert.equal(parseIPv4(text) !== null, net.isIPv4(text), JSON.stringify(text));
      assert.equal(parseIPv6(text) !== null, net.isIPv6(text), JSON.stringify(text));
    }),
    { numRuns: 3000 },
  );
});

test('property: encodeSockaddr / decodeSockaddr round trip', () => {
  const buf = new Uint8Array(SIZEOF.sockaddr_storage);
  const port = fc.integer({ min: 0, max: 65535 });
  const optionalU32 = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 0xffffffff }));
  const inet4 = fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), port).map(([b, p]): SocketAddress => ({ family: 'IPv4', address: formatIPv4(b), port: p }));
  const inet6 = fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), port, optionalU32, optionalU32).map(([b, p, flow, scope]): SocketAddress => {
    const a: SocketAddress = { family: 'IPv6', address: formatIPv6(b), port: p };
    if (flow) a.flowinfo = flow;
    if (scope) a.scopeId = scope;
    return a;
  });
  const utf8Len = (s: string) => Buffer.byteLength(s, 'utf8');
  const text = fc.string({ unit: 'binary', maxLength: 110 }).map((s) => s.replaceAll('\0', ''));
  const fsPath = text.filter((s) => s.length > 0 && utf8Len(s) <= 107).map((path): SocketAddress => ({ family: 'unix', path }));
  const abstract = text.filter((s) => utf8Len(s) <= 107).map((s): SocketAddress => ({ family: 'unix', path: '\0' + s }));
  fc.assert(
    fc.property(fc.oneof(inet4, inet6, fsPath, abstract), (addr) => {
      buf.fill(0xa5); // stale bytes from an earlier call must not leak into the result
      const length = encodeSockaddr(addr, buf);
      assert.deepEqual(decodeSockaddr(buf, length), addr);
      if (addr.family === 'unix') {
        const abstractName = addr.path.startsWith('\0');
        assert.equal(length, OFFSETOF.sockaddr_un.path + utf8Len(addr.path) + (abstractName ? 0 : 1));
      } else assert.equal(length, addr.family === 'IPv4' ? SIZEOF.sockaddr_in : SIZEOF.sockaddr_in6);
    }),
    { numRuns: 3000 },
  );
});

// ---------------------------------------------------------------------------------------------
// The kernel's view

/** bind() a fresh non-blocking socket to `addr`, then getsockname() it back. */
function bindAndName(domain: number, addr: SocketAddress): SocketAddress {
  const fd = sys.socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  try {
    const buf = new Uint8Array(SIZEOF.sockaddr_storage);
    assert.equal(sys.bind(fd, buf, encodeSockaddr(addr, buf)), 0);
    buf.fill(0);
    const len = new Uint32Array([buf.byteLength]);
    assert.equal(sys.getsockname(fd, buf, len), 0);
    return decodeSockaddr(buf, len[0]);
  } finally {
    sys.close(fd);
  }
}

test('kernel: bind to ::1 and 127.0.0.1 port 0, getsockname decodes the address and a real port', () => {
  const v6 = bindAndName(AF_INET6, inetAddress('::1', 0));
  assert.ok(v6.family === 'IPv6' && v6.address === '::1' && v6.port > 0, JSON.stringify(v6));
  const v4 = bindAndName(AF_INET, inetAddress('127.0.0.1', 0));
  assert.ok(v4.family === 'IPv4' && v4.address === '127.0.0.1' && v4.port > 0, JSON.stringify(v4));
});

test('kernel: Unix abstract name and filesystem path round-trip through bind + getsockname', () => {
  const name = `\0m-socket-test-${process.pid}-${Math.random().toString(36).slice(2)}`;
  assert.deepEqual(bindAndName(AF_UNIX, unixAddress(name)), { family: 'unix', path: name });

  const dir = mkdtempSync(join(tmpdir(), 'm-socket-'));
  const path = join(dir, 'sock-é');
  try {
    assert.deepEqual(bindAndName(AF_UNIX, unixAddress(path)), { family: 'unix', path });
    assert.ok(statSync(path).isSocket(), 'the kernel created the socket file at the UTF-8 path');
    unlinkSync(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kernel: an IPv4 client accepted on a dual-stack IPv6 socket decodes as Node prints it', async () => {
  const fd = sys.socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  let client: net.Socket | undefined;
  let accepted = -1;
  try {
    const off = new Int32Array([0]);
    assert.equal(sys.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, off, 4), 0);
    const buf = new Uint8Array(SIZEOF.sockaddr_storage);
    sys.bind(fd, buf, encodeSockaddr(inetAddress('::', 0), buf));
    sys.listen(fd, 8);
    const len = new Uint32Array([buf.byteLength]);
    sys.getsockname(fd, buf, len);
    const { port } = decodeSockaddr(buf, len[0]) as { port: number };

    client = net.connect({ host: '127.0.0.1', port });
    await once(client, 'connect');
    for (let tries = 0; accepted < 0 && tries < 200; tries++) {
      len[0] = buf.byteLength;
      accepted = sys.accept4(fd, buf, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (accepted === WOULD_BLOCK) await sleep(5);
    }
    assert.ok(accepted >= 0, 'accepted the connection');
    const peer = decodeSockaddr(buf, len[0]);
    assert.deepEqual(peer, { family: 'IPv6', address: '::ffff:127.0.0.1', port: client.localPort });
    // Node prints the same text for the same peer seen from a node:net server.
    assert.equal(nodePrints('::ffff:7f00:1'), '::ffff:127.0.0.1');
  } finally {
    client?.destroy();
    if (accepted >= 0) sys.close(accepted);
    sys.close(fd);
  }
});

test('kernel: node:net sees the IPv4-mapped peer as ::ffff:127.0.0.1 too', async () => {
  const server = net.createServer({ ipv6Only: false } as net.ServerOpts);
  const seen = once(server, 'connection');
  server.listen({ host: '::', port: 0 });
  await once(server, 'listening');
  const client = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
  try {
    const [peer] = (await seen) as [net.Socket];
    const bytes = parseIPv6(peer.remoteAddress!)!.bytes;
    assert.equal(formatIPv6(bytes), peer.remoteAddress);
    assert.equal(peer.remoteAddress, '::ffff:127.0.0.1');
    peer.destroy();
  } finally {
    client.destroy();
    server.close();
  }
});
