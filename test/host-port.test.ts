/**
 * parseHostPort / formatHostPort: property tests against the way Node prints addresses
 * (`net.SocketAddress`, which formats with libuv like `server.address()`) and the way a URL
 * prints its `host`, then the bad forms, each refused with an error naming the argument.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatHostPort, parseHostPort } from '../lib/index.ts';

const port = fc.integer({ min: 0, max: 65535 });
/** 16 random bytes, biased towards zero groups so that `::` compression and mapped forms occur. */
const v6Bytes = fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }).chain((groups) =>
  fc.oneof(
    fc.constant(groups),
    fc.constant([0, 0, 0, 0, 0, 0xffff, groups[6], groups[7]]), // IPv4-mapped
  ),
);
/** The uncompressed, upper-case text of 8 groups: the least normalised form there is. */
const longForm = (groups: readonly number[]) => groups.map((g) => g.toString(16).toUpperCase().padStart(4, '0')).join(':');
const nodePrints = (text: string, family: 'ipv4' | 'ipv6', p: number) => new net.SocketAddress({ address: text, family, port: p }).address;
const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));

describe('parseHostPort', () => {
  it('reads [IPv6]:PORT in any spelling as the address Node prints, and formatHostPort writes it back', () => {
    fc.assert(
      fc.property(v6Bytes, port, (groups, p) => {
        const printed = nodePrints(longForm(groups), 'ipv6', p);
        const parsed = parseHostPort(`[${longForm(groups)}]:${p}`);
        assert.deepEqual(parsed, { host: printed, port: p, family: 6 });
        assert.deepEqual(parseHostPort(formatHostPort(parsed.host, parsed.port)), parsed);
        assert.equal(formatHostPort(printed, p), `[${printed}]:${p}`);
      }),
      { numRuns: 500 },
    );
  });

  it("reads a URL's host form (URL spells IPv4-mapped addresses in hex) as the same address", () => {
    fc.assert(
      fc.property(v6Bytes, port, (groups, p) => {
        const urlHost = new URL(`tcp://[${longForm(groups)}]:${p}`).host;
        assert.deepEqual(parseHostPort(urlHost), { host: nodePrints(longForm(groups), 'ipv6', p), port: p, family: 6 });
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips IPv4:PORT through formatHostPort and agrees with URL', () => {
    fc.assert(
      fc.property(v4, port, (address, p) => {
        assert.equal(nodePrints(address, 'ipv4', p), address);
        const text = formatHostPort(address, p);
        assert.equal(text, new URL(`tcp://${address}:${p}`).host);
        assert.deepEqual(parseHostPort(text), { host: address, port: p, family: 4 });
      }),
      { numRuns: 300 },
    );
  });

  it('keeps an IPv6 zone, lowercases names, and accepts names URL accepts', () => {
    assert.deepEqual(parseHostPort('[FE80::1%lo]:8080'), { host: 'fe80::1%lo', port: 8080, family: 6 });
    assert.deepEqual(parseHostPort('LocalHost:0'), { host: 'localhost', port: 0, family: 0 });
    assert.deepEqual(parseHostPort('my-host.example.com.:443'), { host: 'my-host.example.com.', port: 443, family: 0 });
    assert.equal(new URL('tcp://my-host.example.com.:443').host, 'my-host.example.com.:443');
  });

  const bad: [string, string][] = [
    ['', 'the port is missing'],
    ['127.0.0.1', 'the port is missing'],
    ['[::1]', 'the port is missing'],
    ['::1:80', 'needs brackets'],
    ['[::1:80', 'not closed'],
    ['[::1]80', 'only :PORT'],
    ['[1.2.3.4]:80', 'not an IPv6 address'],
    ['[]:80', 'not an IPv6 address'],
    [':80', 'the host is missing'],
    ['1.2.3.4:', 'the port must be'],
    ['1.2.3.4:65536', 'the port must be'],
    ['1.2.3.4:-1', 'the port must be'],
    ['1.2.3.4:+80', 'the port must be'],
    ['1.2.3.4:0x50', 'the port must be'],
    ['1.2.3.4: 80', 'the port must be'],
    ['1.2.3.4:123456', 'the port must be'],
    ['256.1.1.1:80', 'not a valid IPv4'],
    ['1.2.3:80', 'not a valid IPv4'],
    ['010.0.0.1:80', 'not a valid IPv4'],
    ['0x7f.1:80', 'not a valid IPv4'],
    ['a b:80', 'not an IP address or a host name'],
    ['user@host:80', 'not an IP address or a host name'],
    ['-lead.example:80', 'not an IP address or a host name'],
    ['a..b:80', 'not an IP address or a host name'],
    ['host/path:80', 'not an IP address or a host name'],
  ];
  for (const [text, why] of bad) {
    it(`refuses ${JSON.stringify(text)} (${why}), naming the argument`, () => {
      assert.throws(() => parseHostPort(text, '--target'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_INVALID_ARG_VALUE');
        assert.match(err.message, /"--target"/);
        assert.ok(err.message.includes(why), err.message);
        return true;
      });
    });
  }

  it('refuses what is not a string, and formatHostPort refuses bad hosts and ports', () => {
    assert.throws(() => parseHostPort(80 as never), { code: 'ERR_INVALID_ARG_TYPE', message: /"hostPort"/ });
    assert.throws(() => formatHostPort('', 80), { code: 'ERR_INVALID_ARG_TYPE', message: /"host"/ });
    assert.throws(() => formatHostPort('::1', 70000), { code: 'ERR_OUT_OF_RANGE', message: /"port"/ });
  });
});
