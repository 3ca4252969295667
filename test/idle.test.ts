/**
 * IdleTimeouts: on a fake clock and mocked timers, quiet sockets are reported when (and not
 * before) their timeout passes, busy ones never; two hundred sockets with two timeouts share
 * one timer (counted through the mocked setTimeout); the timer does not keep a process alive
 * (a child exits by itself); the default answer to idleness is destroy().
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it, mock } from 'node:test';
import { IdleTimeouts, Reactor, Socket } from '../lib/index.ts';
import { ROOT } from './helpers/server-process.ts';
import { trackFds } from './helpers/fd.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

describe('IdleTimeouts', () => {
  it('reports quiet sockets at their timeout, never busy ones, with one timer for all', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    // Count the timers the set makes, over the mocked ones.
    const mockedSet = globalThis.setTimeout;
    const mockedClear = globalThis.clearTimeout;
    let live = 0;
    let created = 0;
    let maxLive = 0;
    const pending = new Set<unknown>();
    globalThis.setTimeout = ((fn: () => void, ms: number) => {
      created++;
      const t = mockedSet(() => {
        pending.delete(t);
        live = pending.size;
        fn();
      }, ms);
      pending.add(t);
      live = pending.size;
      maxLive = Math.max(maxLive, live);
      return t;
    }) as typeof setTimeout;
    globalThis.clearTimeout = ((t: NodeJS.Timeout) => {
      pending.delete(t);
      live = pending.size;
      mockedClear(t);
    }) as typeof clearTimeout;

    let clock = 0;
    const reactor = new Reactor();
    const idled = new Map<Socket, number>();
    const idle = new IdleTimeouts(reactor, { now: () => clock, onIdle: (s, ms) => idled.set(s, clock - ms) });
    const pairs: [Socket, Socket][] = [];
    try {
      const quiet: Socket[] = [];
      const busy: Socket[] = [];
      const shortQuiet: Socket[] = [];
      const read = (s: Socket) => () => void s.receive();
      for (let i = 0; i < 100; i++) {
        const pair = Socket.pair();
        pairs.push(pair);
        const [s] = pair;
        const group = i % 5 === 4 ? shortQuiet : i % 2 === 0 ? quiet : busy;
        group.push(s);
        idle.add(s, read(s), group === shortQuiet ? 500 : 1000);
      }
      assert.equal(idle.size, 100);
      const peerOf = new Map(pairs.map(([s, peer]) => [s, peer]));
      for (let step = 1; step <= 15; step++) {
        // The busy sockets' peers send something every 100 ms; the reactor delivers it.
        for (const s of busy) peerOf.get(s)!.send(Uint8Array.of(step));
        reactor.drain();
        clock += 100;
        mock.timers.tick(100);
        for (const s of shortQuiet) assert.equal(idled.has(s), clock >= 500, `short-timeout socket at ${clock} ms`);
        for (const s of quiet) assert.equal(idled.has(s), clock >= 1000, `quiet socket at ${clock} ms`);
        for (const s of busy) assert.equal(idled.has(s), false, `busy socket reported at ${clock} ms`);
        assert.ok(live <= 1, `${live} timers at once`);
      }
      // Reported once each, never before its timeout had passed since its last activity.
      for (const [, since] of idled) assert.ok(since >= 0);
      assert.equal(idled.size, quiet.length + shortQuiet.length);
      assert.equal(idle.size, busy.length);
      assert.equal(maxLive, 1);
      // One timer armed at a time, re-armed when it fires: not one per socket, not one per touch.
      assert.ok(created <= 20, `${created} timers made for 100 sockets over 15 steps`);
    } finally {
      idle.close();
      reactor.close();
      for (const pair of pairs) for (const s of pair) s.destroy();
      globalThis.setTimeout = mockedSet;
      globalThis.clearTimeout = mockedClear;
      mock.timers.reset();
    }
  });

  it('touch() restarts a timeout; delete() stops timing; a socket closed by its handler leaves', () => {
    let clock = 0;
    const reactor = new Reactor();
    const idled: Socket[] = [];
    const idle = new IdleTimeouts(reactor, { now: () => clock, onIdle: (s) => idled.push(s) });
    const [a, b] = Socket.pair();
    const [c, d] = Socket.pair();
    try {
      idle.add(a, () => {}, 1000);
      idle.add(c, (event) => {
        if (event.readable) c.destroy();
      }, 1000);
      clock = 900;
      assert.equal(idle.touch(a), true);
      assert.equal(idle.touch(b), false);
      d.send(Uint8Array.of(1));
      reactor.drain();
      assert.equal(idle.has(c), false, 'a socket closed by its own handler is forgotten');
      assert.equal(idle.delete(a), true);
      assert.equal(idle.has(a), false);
      assert.equal(idle.delete(a), false);
      assert.equal(idle.size, 0);
    } finally {
      idle.close();
      reactor.close();
      for (const s of [a, b, c, d]) s.destroy();
    }
  });

  it('destroys an idle socket by default (real timers)', { timeout: 10_000 }, async () => {
    const reactor = new Reactor();
    const idle = new IdleTimeouts(reactor);
    const [a, b] = Socket.pair();
    try {
      idle.add(a, () => {}, 20);
      await a.whenClosed();
      assert.equal(a.state, 'closed');
      assert.equal(idle.size, 0);
    } finally {
      idle.close();
      reactor.close();
      a.destroy();
      b.destroy();
    }
  });

  it('does not keep the process alive by itself', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/idle-child.ts'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.signal, null, `the child was still running after 30 s (idle timeouts of 60 s): ${run.stderr}`);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, 'exited with 2 sockets timed\n');
  });

  it('refuses bad arguments, naming them', () => {
    const reactor = new Reactor();
    const idle = new IdleTimeouts(reactor);
    const [a, b] = Socket.pair();
    try {
      assert.throws(() => new IdleTimeouts(null as never), { code: 'ERR_INVALID_ARG_TYPE', message: /"reactor"/ });
      assert.throws(() => new IdleTimeouts(reactor, { onIdle: 5 as never }), { code: 'ERR_INVALID_ARG_TYPE', message: /"options.onIdle"/ });
      assert.throws(() => idle.add(a, () => {}, 0), { code: 'ERR_OUT_OF_RANGE', message: /"timeoutMs"/ });
      assert.throws(() => idle.add(a, null as never, 10), { code: 'ERR_INVALID_ARG_TYPE', message: /"handler"/ });
      assert.throws(() => idle.add({} as never, () => {}, 10), { code: 'ERR_INVALID_ARG_TYPE', message: /"socket"/ });
      idle.close();
      assert.throws(() => idle.add(a, () => {}, 10), { code: 'ERR_SOCKET_CLOSED' });
    } finally {
      reactor.close();
      a.destroy();
      b.destroy();
    }
  });
});
