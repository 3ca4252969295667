/**
 * The fault sweep (test/helpers/fault-sweep.ts) over the datagram family: every call site of
 * socket, bind, sendto, send, recvfrom, recvmmsg, sendmmsg, getsockopt and close reached by a UDP
 * batch echo and a Unix datagram pair, on both backends, times each fault the kernel can return
 * there. Beyond the engine's invariants (nothing escapes wait(), no fd leaked, nothing stalls),
 * each run checks the datagram rules: every datagram that arrives is one that was sent, whole and
 * once; every one that does not arrive was reported (a `'refused'` status, a batch that took
 * fewer, an event's error with `unsentDatagrams`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { faultPointNames } from '../ffi/faults.ts';
import { DatagramBatch, DatagramSocket, Interest, Multiplexer, SocketError, type MultiplexerEvent } from '../lib/index.ts';
import { trackFds } from './helpers/fd.ts';
import { EAGAIN, EINTR, FAILED, fatal, sweep, transient, Violation, type Context, type FaultTable, type Scenario } from './helpers/fault-sweep.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

/** What the kernel can return at each datagram call (EBADF, EFAULT, EINVAL would be our own bugs). */
const table: FaultTable = (name) => {
  switch (name) {
    case 'sendto':
    case 'send':
    case 'sendmmsg':
      // ENOBUFS, ECONNREFUSED and EPERM refuse that one datagram: lost, and said so.
      return [EINTR, EAGAIN, fatal('ENOBUFS'), fatal('ECONNREFUSED'), fatal('EPERM')];
    case 'recvfrom':
    case 'recvmmsg':
      // A pending ICMP error comes out instead of a datagram, which stays: reported, nothing lost.
      return [EINTR, EAGAIN, transient('ECONNREFUSED', { errno: 111 }), fatal('ENOMEM')];
    case 'socket':
    case 'socketpair':
      return [fatal('EMFILE'), fatal('ENFILE'), fatal('ENOMEM')];
    case 'bind':
      return [fatal('EADDRINUSE')];
    case 'close':
      return [transient('EIO', { errno: 5 })];
    case 'epoll_wait':
      return [EINTR];
    case 'poll':
      return [EINTR];
    default:
      return [];
  }
};

const COUNT = 48;
const payload = (family: number, i: number) => new Uint8Array(40 + (i % 7) * 13).fill(family * 100 + i);

/** Who got what: each index at most once, whole. */
class Tally {
  readonly seen = new Set<number>();
  lost = 0;
  constructor(readonly ctx: Context, readonly family: number, readonly who: string) {}
  arrived(bytes: Uint8Array): void {
    const i = bytes[0] - this.family * 100;
    const expected = payload(this.family, i);
    this.ctx.check(i >= 0 && i < COUNT && bytes.byteLength === expected.byteLength && bytes.every((b) => b === bytes[0]), `${this.who}: a datagram that was never sent (${bytes.byteLength} bytes of ${bytes[0]})`);
    this.ctx.check(!this.seen.has(i), `${this.who}: datagram ${i} arrived twice`);
    this.seen.add(i);
  }
  /** A datagram reported lost (`n` of them). */
  reportedLost(n: number, err: unknown, where: string): void {
    this.lost += n;
    this.ctx.reported(err ?? new Error(`${where}: not taken`), where);
  }
  get done(): boolean {
    return this.seen.size + this.lost >= COUNT;
  }
}

function errorOf(e: MultiplexerEvent, tally: Tally, where: string): void {
  if (e.error === null) return;
  const unsent = (e.error as SocketError & { unsentDatagrams?: number }).unsentDatagrams ?? 0;
  if (unsent > 0) tally.reportedLost(unsent, e.error, where);
  else tally.ctx.reported(e.error, where);
}

function waitOn(mux: Multiplexer): readonly MultiplexerEvent[] {
  try {
    return mux.wait(1);
  } catch (err) {
    throw new Violation(`wait() threw ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}

function datagramEcho(backend: 'epoll' | 'poll'): Scenario {
  return {
    name: `UDP batch echo and a Unix datagram pair (${backend})`,
    run(ctx) {
      const owned: { destroy(): void }[] = [];
      const mux = ctx.call('new Multiplexer', () => new Multiplexer({ backend }));
      if (mux === FAILED) return false;
      try {
        const server = ctx.call('bind server', () => DatagramSocket.bind({ host: '127.0.0.1' }));
        if (server === FAILED) return false;
        owned.push(server);
        const client = ctx.call('bind client', () => DatagramSocket.bind({ host: '127.0.0.1' }));
        if (client === FAILED) return false;
        owned.push(client);
        const pair = ctx.call('DatagramSocket.pair', () => DatagramSocket.pair());
        if (pair === FAILED) return false;
        const [ua, ub] = pair;
        owned.push(ua, ub);
        mux.add(server);
        mux.add(client);
        mux.add(ua, Interest.NONE);
        mux.add(ub);
        const udp = new Tally(ctx, 1, 'udp');
        const unix = new Tally(ctx, 2, 'unix');
        const to = server.localAddress;
        for (let i = 0; i < COUNT; i++) {
          const status = ctx.call('client.sendTo', () => client.sendTo(payload(1, i), to));
          if (status === FAILED) udp.lost++;
          else if (status === 'refused') udp.reportedLost(1, client.lastError, 'client.sendTo');
          else ctx.check(status === 'sent' || status === 'queued', `client.sendTo answered ${status}`);
          const sent = ctx.call('ua.send', () => ua.send(payload(2, i)));
          if (sent === FAILED) unix.lost++;
          else if (sent === 'refused') unix.reportedLost(1, ua.lastError, 'ua.send');
          else ctx.check(sent === 'sent' || sent === 'queued', `ua.send answered ${sent}`);
        }
        const batch = new DatagramBatch({ capacity: 16, datagramSize: 256 });
        const buffer = new Uint8Array(512);
        const deadline = performance.now() + 3000;
        while (!(udp.done && unix.done)) {
          ctx.check(performance.now() < deadline, `stalled: udp ${udp.seen.size}+${udp.lost}, unix ${unix.seen.size}+${unix.lost} of ${COUNT}`);
          for (const e of waitOn(mux)) {
            if (e.target === server) {
              errorOf(e, udp, 'server event');
              const n = ctx.call('server.receiveBatch', () => server.receiveBatch(batch));
              if (n === FAILED || n === 0) continue;
              const taken = ctx.call('server.sendBatch', () => server.sendBatch(batch, n));
              if (taken === FAILED) udp.lost += n;
              else if (taken < n) udp.reportedLost(n - taken, server.lastError, 'server.sendBatch');
            } else if (e.target === client) {
              errorOf(e, udp, 'client event');
              for (let r = ctx.call('client.receiveFrom', () => client.receiveFrom(buffer)); r !== null && r !== FAILED; r = ctx.call('client.receiveFrom', () => client.receiveFrom(buffer))) {
                udp.arrived(r.bytes);
              }
            } else if (e.target === ua) {
              errorOf(e, unix, 'ua event');
            } else if (e.target === ub) {
              errorOf(e, unix, 'ub event');
              for (let r = ctx.call('ub.receiveFrom', () => ub.receiveFrom(buffer)); r !== null && r !== FAILED; r = ctx.call('ub.receiveFrom', () => ub.receiveFrom(buffer))) {
                unix.arrived(r.bytes);
              }
            }
          }
        }
        return udp.lost === 0 && unix.lost === 0;
      } finally {
        for (const o of owned.reverse()) o.destroy();
        mux.close();
      }
    },
  };
}

const NAMES = faultPointNames().filter((n) => n !== 'getaddrinfo');

describe('fault sweep over datagrams: every call site x every fault the kernel can return there', () => {
  let cases = 0;
  for (const backend of ['epoll', 'poll'] as const) {
    it(`UDP batch echo and a Unix datagram pair (${backend})`, async () => {
      const result = await sweep(datagramEcho(backend), NAMES, table);
      cases += result.cases - result.unreached.length;
      assert.deepEqual(result.violations, [], `${result.violations.length} broken invariants`);
      for (const call of ['sendto', 'send', 'recvfrom', 'recvmmsg', 'sendmmsg']) {
        assert.ok(result.sites.some((s) => s.startsWith(call)), `the scenario reached ${call} (sites: ${result.sites.join('; ')})`);
      }
    });
  }
  it('swept the datagram paths (a broken site finder would sweep nothing)', () => {
    console.log(`datagram fault sweep: ${cases} (call site x fault) cases`);
    assert.ok(cases >= 60, `only ${cases} cases`);
  });
});
