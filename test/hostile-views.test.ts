/**
 * Byte arrays whose properties lie. A Uint8Array's `length`, `byteLength`, `byteOffset` and
 * `subarray` are ordinary properties: a subclass's getters, `Object.defineProperty` on the
 * instance or a `@@species` constructor can make them say anything. koffi hands libc the view's
 * real address; a size taken from the object beside it once let the kernel read past the view
 * (bytes beyond it went out in a send) and write past it (a receive crashed the process).
 *
 * Each view here covers the first bytes of a larger ArrayBuffer whose rest holds a canary, and
 * claims the whole buffer: a send that leaks sends canary bytes, a receive that overruns
 * overwrites them. Every public call that takes bytes is tried with each kind of liar; the lying
 * getters also count their calls, and the library must never ask them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DatagramBatch, DatagramSocket, Multiplexer, Reactor, Socket, setRawOption, toStream, type SendStatus } from '../lib/index.ts';
import { connectedPair, pumpUntil } from './helpers/sockets.ts';
import { injectFaults } from '../ffi/faults.ts';
import { SOL_SOCKET } from '../ffi/constants.ts';

const WHOLE = 4096;
const CANARY = 0x5c;
const DATA = 0x41;

let asked = 0;

/** Lies through getters; its constructor is also what its subarray/slice build (@@species). */
class Liar extends Uint8Array {
  override get length(): number {
    asked++;
    return WHOLE;
  }
  override get byteLength(): number {
    asked++;
    return WHOLE;
  }
}

/** Honest itself, but what its subarray/slice make is a Liar over the same memory. */
class SpeciesLiar extends Uint8Array {
  static get [Symbol.species](): typeof Uint8Array {
    asked++;
    return Liar;
  }
}

type Kind = 'getters' | 'own properties' | 'species';
const KINDS: Kind[] = ['getters', 'own properties', 'species'];

/** A view of the first `real` bytes of a WHOLE-byte buffer (data there, canary beyond), lying as `kind`. */
function liar(kind: Kind, real: number, fill = DATA): { view: Uint8Array; whole: Uint8Array } {
  const whole = new Uint8Array(WHOLE).fill(CANARY);
  whole.fill(fill, 0, real);
  let view: Uint8Array;
  if (kind === 'getters') view = new Liar(whole.buffer, 0, real);
  else if (kind === 'species') view = new SpeciesLiar(whole.buffer, 0, real);
  else {
    view = whole.subarray(0, real);
    for (const name of ['length', 'byteLength']) {
      Object.defineProperty(view, name, {
        get() {
          asked++;
          return WHOLE;
        },
      });
    }
  }
  return { view, whole };
}

/** A resizable ArrayBuffer (ES2024; Node 20 has it, this project's TypeScript lib does not name it). */
const resizableBuffer = (n: number): ArrayBuffer & { resize(n: number): void } =>
  new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void })(n, { maxByteLength: n });

const realLength = (view: Uint8Array): number => Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), 'byteLength')!.get!.call(view);

function canaryIntact(whole: Uint8Array, from: number): boolean {
  return whole.subarray(from).every((b) => b === CANARY);
}

/** Everything waiting on a stream socket, read honestly. */
function drain(socket: Socket): Uint8Array {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  for (;;) {
    const n = socket.receiveInto(buffer);
    if (n <= 0) break;
    chunks.push(buffer.slice(0, n));
  }
  return Buffer.concat(chunks);
}

function only(bytes: Uint8Array, value: number, length: number): void {
  assert.equal(bytes.byteLength, length, `${bytes.byteLength} bytes arrived, ${length} expected`);
  assert.ok(bytes.every((b) => b === value), 'bytes other than the view\'s own arrived');
}

for (const kind of KINDS) {
  describe(`a view that lies by its ${kind}`, () => {
    it('stream send sends only the view\'s own bytes, also through the queue and with a length', () => {
      const [a, b] = Socket.pair();
      try {
        asked = 0;
        assert.equal(a.send(liar(kind, 16).view), 'sent');
        only(drain(b), DATA, 16);
        assert.equal(a.send(liar(kind, 16).view, 8), 'sent');
        only(drain(b), DATA, 8);
        assert.throws(() => a.send(liar(kind, 16).view, 17), { code: 'ERR_OUT_OF_RANGE', message: /data\.byteLength \(16\)/ });
        // Fill the kernel's buffer, then queue a liar behind it: the queue copies its own bytes only.
        a.setOption('sendBufferSize', 4096);
        const filler = new Uint8Array(65536).fill(0x11);
        let sends = 1;
        while (a.send(filler) === 'sent' && sends < 1000) sends++;
        const before = a.queuedBytes;
        assert.equal(a.send(liar(kind, 16).view), 'queued');
        assert.equal(a.queuedBytes - before, 16);
        let received = 0;
        let tail = new Uint8Array(0);
        for (let i = 0; i < 100000 && (a.queuedBytes > 0 || received < sends * 65536 + 16); i++) {
          a.flush();
          const got = drain(b);
          received += got.byteLength;
          if (got.byteLength > 0) tail = Buffer.concat([tail, got]).subarray(-16);
        }
        assert.equal(received, sends * 65536 + 16);
        only(tail, DATA, 16);
        assert.equal(asked, 0, 'the library read a size from the view itself');
      } finally {
        a.close();
        b.close();
      }
    });

    it('a partial stream send queues only the rest of the view\'s own bytes', () => {
      const [a, b] = Socket.pair();
      try {
        using _ = injectFaults(({ name, nth }) => (name === 'send' && nth === 1 ? { short: 5 } : null), ['send']);
        asked = 0;
        assert.equal(a.send(liar(kind, 16).view), 'partial');
        assert.equal(a.queuedBytes, 11);
        a.flush();
        only(drain(b), DATA, 16);
        assert.equal(asked, 0);
      } finally {
        a.close();
        b.close();
      }
    });

    it('stream receiveInto, receive and receiveWithFds write only into the view', () => {
      const [a, b] = Socket.pair();
      try {
        asked = 0;
        a.send(new Uint8Array(3 * WHOLE).fill(0x33));
        const first = liar(kind, 8, 0);
        assert.equal(b.receiveInto(first.view), 8);
        assert.ok(canaryIntact(first.whole, 8), 'receiveInto wrote past the view');
        const second = liar(kind, 8, 0);
        const result = b.receive(second.view);
        assert.equal(result.status, 'alive');
        assert.equal(realLength(result.bytes), 8);
        assert.ok(canaryIntact(second.whole, 8), 'receive wrote past the view');
        const third = liar(kind, 8, 0);
        const withFds = b.receiveWithFds(third.view);
        assert.ok(canaryIntact(third.whole, 8), 'receiveWithFds wrote past the view');
        assert.ok(third.whole.subarray(0, 8).every((x) => x === 0x33));
        assert.equal(withFds.fds.length, 0);
        assert.equal(asked, 0);
      } finally {
        a.close();
        b.close();
      }
    });

    it('receiveInto from bytes an io_uring ring received already writes only into the view', () => {
      const pair = connectedPair();
      const mux = new Multiplexer({ backend: 'io_uring' }); // epoll where io_uring is missing: recv(2), as above
      try {
        mux.add(pair.server);
        asked = 0;
        pair.client.send(new Uint8Array(3 * WHOLE).fill(0x33));
        let readable = false;
        pumpUntil(mux, () => readable, (event) => (readable ||= event.target === pair.server), 'the bytes');
        const view = liar(kind, 8, 0);
        assert.equal(pair.server.receiveInto(view.view), 8);
        assert.ok(canaryIntact(view.whole, 8), `receiveInto wrote past the view (ringReceive ${mux.ringReceive})`);
        assert.ok(view.whole.subarray(0, 8).every((x) => x === 0x33));
        assert.equal(asked, 0);
      } finally {
        mux.close();
        pair.close();
      }
    });

    it('stream sendWithFds sends only the view\'s own bytes', () => {
      const [a, b] = Socket.pair();
      const [p, q] = Socket.pair();
      try {
        asked = 0;
        assert.equal(a.sendWithFds(liar(kind, 16).view, [p.fd]), 'sent');
        const got = b.receiveWithFds(new Uint8Array(WHOLE));
        only(got.bytes, DATA, 16);
        assert.equal(got.fds.length, 1);
        for (const fd of got.fds) fd.close();
        assert.equal(asked, 0);
      } finally {
        for (const s of [a, b, p, q]) s.close();
      }
    });

    it('datagram send, sendTo, sendSegments and sendWithFds send only the view\'s own bytes', () => {
      const [a, b] = DatagramSocket.pair();
      const server = DatagramSocket.bind({ host: '127.0.0.1', port: 0 });
      const client = DatagramSocket.create({ family: 'IPv4' });
      const into = new Uint8Array(WHOLE * 2);
      try {
        asked = 0;
        assert.equal(a.send(liar(kind, 16).view), 'sent');
        assert.equal(b.receiveFrom(into)?.size, 16);
        assert.equal(a.sendWithFds(liar(kind, 16).view, [server.fd]), 'sent');
        const withFds = b.receiveWithFds(into);
        assert.equal(withFds?.size, 16);
        for (const fd of withFds?.fds ?? []) fd.close();
        const to = { host: '127.0.0.1', port: server.localAddress.port };
        assert.equal(client.sendTo(liar(kind, 16).view, to), 'sent');
        const receipt = server.receiveFrom(into);
        assert.equal(receipt?.size, 16);
        only(receipt!.bytes, DATA, 16);
        client.sendSegments(liar(kind, 100).view, 40, to);
        const sizes: number[] = [];
        for (let r = server.receiveFrom(into); r !== null; r = server.receiveFrom(into)) sizes.push(r.size);
        assert.deepEqual(sizes, [40, 40, 20]);
        assert.equal(asked, 0);
      } finally {
        for (const s of [a, b, server, client]) s.close();
      }
    });

    it('a queued datagram is the view\'s own bytes', () => {
      const [a, b] = DatagramSocket.pair();
      try {
        asked = 0;
        let queued = false;
        for (let i = 0; i < 100000 && !queued; i++) queued = a.send(new Uint8Array(1024)) === 'queued';
        assert.ok(queued, 'the kernel never filled');
        assert.equal(a.send(liar(kind, 16).view), 'queued');
        const into = new Uint8Array(WHOLE * 2);
        let last = -1;
        for (let i = 0; i < 200000 && (a.queuedBytes > 0 || last === -1); i++) {
          const r = b.receiveFrom(into);
          if (r === null) a.flush();
          else last = r.size;
        }
        while (true) {
          const r = b.receiveFrom(into);
          if (r === null) break;
          last = r.size;
        }
        assert.equal(last, 16);
        assert.equal(asked, 0);
      } finally {
        a.close();
        b.close();
      }
    });

    it('datagram receiveFrom and receiveWithFds write only into the view', () => {
      const [a, b] = DatagramSocket.pair();
      try {
        asked = 0;
        a.send(new Uint8Array(WHOLE).fill(0x33));
        const first = liar(kind, 8, 0);
        const receipt = b.receiveFrom(first.view);
        assert.equal(receipt?.length, 8);
        assert.equal(receipt?.truncated, true);
        assert.ok(canaryIntact(first.whole, 8), 'receiveFrom wrote past the view');
        a.send(new Uint8Array(WHOLE).fill(0x33));
        const second = liar(kind, 8, 0);
        const withFds = b.receiveWithFds(second.view);
        assert.equal(withFds?.truncated, true);
        assert.ok(canaryIntact(second.whole, 8), 'receiveWithFds wrote past the view');
        assert.equal(asked, 0);
      } finally {
        a.close();
        b.close();
      }
    });

    it('a batch slot takes the view\'s own size', () => {
      const [a, b] = DatagramSocket.pair();
      const batch = new DatagramBatch({ capacity: 2, datagramSize: 64 });
      try {
        asked = 0;
        batch.set(0, liar(kind, 16).view);
        assert.equal(batch.length(0), 16);
        assert.equal(a.sendBatch(batch, 1), 1);
        assert.equal(b.receiveFrom(new Uint8Array(WHOLE))?.size, 16);
        assert.equal(asked, 0);
      } finally {
        a.close();
        b.close();
      }
    });

    it('setRawOption passes the view\'s own size', () => {
      const [a, b] = Socket.pair();
      try {
        asked = 0;
        const lengths: unknown[] = [];
        {
          using _ = injectFaults(({ args }) => {
            lengths.push(args[4]);
            return null;
          }, ['setsockopt']);
          // SO_RCVBUF as its 4 bytes (lengths are recorded before the kernel answers).
          setRawOption(a.fd, SOL_SOCKET, 8, liar(kind, 4, 0).view);
        }
        assert.deepEqual(lengths, [4]);
        assert.equal(asked, 0);
      } finally {
        a.close();
        b.close();
      }
    });
  });
}

describe('objects that only look like byte arrays', () => {
  const fakes: [string, () => unknown, RegExp][] = [
    ['a Proxy of a Uint8Array', () => new Proxy(new Uint8Array(16), {}), /Received a Proxy/],
    ['an object made from Uint8Array.prototype', () => Object.create(Uint8Array.prototype), /inherits from Uint8Array\.prototype but is no typed array/],
  ];
  for (const [what, make, received] of fakes) {
    it(`${what} is refused by name, not by a TypeError from V8`, () => {
      const [a, b] = Socket.pair();
      const [c, d] = DatagramSocket.pair();
      try {
        for (const call of [() => a.send(make() as Uint8Array), () => a.receiveInto(make() as Uint8Array), () => c.send(make() as Uint8Array), () => d.receiveFrom(make() as Uint8Array)]) {
          assert.throws(call, (err: Error & { code?: string }) => {
            assert.equal(err.code, 'ERR_INVALID_ARG_TYPE');
            assert.match(err.message, /"(data|into)" argument must be an instance of Uint8Array or Buffer/);
            assert.match(err.message, received);
            return true;
          });
        }
        assert.throws(() => setRawOption(a.fd, SOL_SOCKET, 8, make() as Uint8Array), { code: 'ERR_INVALID_ARG_TYPE', message: /"value"/ });
      } finally {
        for (const s of [a, b, c, d]) s.close();
      }
    });
  }
  it('DatagramBatch: setAddress of no address is refused by name; set of a view its buffer shrank below empties the slot', () => {
    const batch = new DatagramBatch({ capacity: 2, datagramSize: 64 });
    assert.throws(() => batch.setAddress(0, undefined as never), { code: 'ERR_INVALID_ARG_TYPE', message: /"address" argument must be a SocketAddress object/ });
    const buffer = resizableBuffer(320);
    const view = new Uint8Array(buffer, 100, 64);
    buffer.resize(120); // view is out of bounds: no bytes
    batch.set(0, view);
    assert.equal(batch.length(0), 0);
  });

  it('a Uint8Array from another realm is taken', async () => {
    const vm = await import('node:vm');
    const foreign = vm.runInNewContext('new Uint8Array([1, 2, 3])') as Uint8Array;
    const [a, b] = Socket.pair();
    try {
      assert.equal(a.send(foreign), 'sent');
      assert.deepEqual([...drain(b)], [1, 2, 3]);
    } finally {
      a.close();
      b.close();
    }
  });
});

describe('what a receive hands back is the bytes received, whatever the view\'s species says', () => {
  it('receive, receiveWithFds, receiveFrom: as long as what came, a Buffer for a Buffer', () => {
    const [a, b] = Socket.pair();
    const [c, d] = DatagramSocket.pair();
    try {
      asked = 0;
      const five = new Uint8Array([1, 2, 3, 4, 5]);
      for (const receive of [(v: Uint8Array) => b.receive(v).bytes, (v: Uint8Array) => b.receiveWithFds(v).bytes]) {
        a.send(five);
        const bytes = receive(liar('species', 64, 0).view);
        assert.equal(realLength(bytes), 5);
        assert.deepEqual([...Uint8Array.prototype.slice.call(bytes)], [1, 2, 3, 4, 5]);
      }
      for (const receive of [(v: Uint8Array) => d.receiveFrom(v)!.bytes, (v: Uint8Array) => d.receiveWithFds(v)!.bytes]) {
        c.send(five);
        assert.equal(realLength(receive(liar('species', 64, 0).view)), 5);
      }
      assert.equal(asked, 0, 'the species was asked');
      a.send(five);
      const buffer = b.receive(Buffer.alloc(64)).bytes;
      assert.ok(Buffer.isBuffer(buffer) && buffer.toString('hex') === '0102030405', 'a Buffer stays a Buffer');
    } finally {
      for (const s of [a, b, c, d]) s.close();
    }
  });
});

describe('arguments whose getters resize the bytes while the call reads them', () => {
  it('sendTo, sendSegments, sendWithFds take the size after the destination and the fds are read', () => {
    const server = DatagramSocket.bind({ host: '127.0.0.1', port: 0 });
    const client = DatagramSocket.create({ family: 'IPv4' });
    const [a, b] = Socket.pair();
    const [p, q] = Socket.pair();
    const into = new Uint8Array(WHOLE * 2);
    try {
      const port = server.localAddress.port;
      for (const send of [
        (data: Uint8Array, to: { host: string; port: number }) => client.sendTo(data, to),
        (data: Uint8Array, to: { host: string; port: number }) => client.sendSegments(data, 4096, to),
      ]) {
        const buffer = resizableBuffer(4096);
        const view = new Uint8Array(buffer).fill(DATA); // tracks the buffer's length
        const to = {
          host: '127.0.0.1',
          get port() {
            buffer.resize(8);
            return port;
          },
        };
        assert.equal(send(view, to), 'sent');
        assert.equal(server.receiveFrom(into)?.size, 8);
      }
      const buffer = resizableBuffer(4096);
      const view = new Uint8Array(buffer).fill(DATA);
      const shrinking = {
        get fd() {
          buffer.resize(8);
          return p.fd;
        },
      };
      assert.equal(a.sendWithFds(view, [shrinking]), 'sent');
      const got = b.receiveWithFds(new Uint8Array(WHOLE));
      only(got.bytes, DATA, 8);
      for (const fd of got.fds) fd.close();
    } finally {
      for (const s of [server, client, a, b, p, q]) s.close();
    }
  });

  it('receiveWithFds reads its options before the size of into: a getter that empties it is refused, nothing is read', () => {
    const [a, b] = Socket.pair();
    const [p, q] = Socket.pair();
    try {
      const buffer = resizableBuffer(64);
      const into = new Uint8Array(buffer);
      a.sendWithFds(new Uint8Array(32).fill(DATA), [p]);
      const options = {
        get maxFds() {
          buffer.resize(0);
          return 4;
        },
      };
      assert.throws(() => b.receiveWithFds(into, options), { code: 'ERR_OUT_OF_RANGE', message: /into\.byteLength/ });
      const got = b.receiveWithFds(new Uint8Array(64));
      only(got.bytes, DATA, 32);
      assert.equal(got.fds.length, 1, 'the fd came with the bytes');
      for (const fd of got.fds) fd.close();
    } finally {
      for (const s of [a, b, p, q]) s.close();
    }
  });

  it('a datagram receiveWithFds into a view its buffer shrank below: a cut datagram, its fd handed over, nothing thrown', () => {
    const [c, d] = DatagramSocket.pair();
    const [p, q] = Socket.pair();
    try {
      const buffer = resizableBuffer(64);
      const into = new Uint8Array(buffer, 32, 16);
      buffer.resize(8); // into is now out of bounds: no bytes
      c.sendWithFds(new Uint8Array(32).fill(DATA), [p]);
      const got = d.receiveWithFds(into);
      assert.equal(got?.size, 32);
      assert.equal(got?.truncated, true);
      assert.equal(got?.bytes.byteLength, 0);
      assert.equal(got?.fds.length, 1);
      for (const fd of got?.fds ?? []) fd.close();
    } finally {
      for (const s of [c, d, p, q]) s.close();
    }
  });
});

describe('a script that tampers with Uint8Array after the library loaded', () => {
  const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;

  /** Sends 64-byte chunks until some wait in the queue while `tamper` is in force, then drains the queue; what the peer got. */
  function queueThrough(tamper: () => () => void): { accepted: number; received: number; foreign: number; errors: string[] } {
    const [a, b] = Socket.pair();
    const mux = new Multiplexer();
    const errors: string[] = [];
    let accepted = 0;
    let received = 0;
    let foreign = 0;
    const into = new Uint8Array(1 << 17);
    const count = (): void => {
      for (let n = b.receiveInto(into); n > 0; n = b.receiveInto(into)) {
        received += n;
        for (let i = 0; i < n; i++) if (into[i] !== 0x11) foreign++;
      }
    };
    try {
      mux.add(a);
      a.setOption('sendBufferSize', 4096);
      const chunk = new Uint8Array(64).fill(0x11);
      const restore = tamper();
      try {
        for (let i = 0; i < 4000 && a.queuedBytes <= 2000; i++) {
          const status: SendStatus = a.send(chunk);
          if (status === 'not-sent') break;
          accepted += 64;
        }
        for (let i = 0; i < 2000 && a.queuedBytes > 0; i++) {
          mux.wait(10);
          count();
        }
      } catch (err) {
        errors.push(String(err));
      } finally {
        restore();
      }
      count();
    } finally {
      mux.close();
      a.close();
      b.close();
    }
    return { accepted, received, foreign, errors };
  }

  it('byteLength and length that lie for arrays of 1 KiB or more (the queue\'s blocks): the peer gets what was sent, nothing of the heap', () => {
    const result = queueThrough(() => {
      const saved = ['length', 'byteLength'].map((name) => [name, Object.getOwnPropertyDescriptor(TypedArrayPrototype, name)!] as const);
      for (const [name, descriptor] of saved) {
        Object.defineProperty(TypedArrayPrototype, name, {
          configurable: true,
          get(this: Uint8Array) {
            const n = descriptor.get!.call(this) as number;
            return n >= 1024 ? n + 4096 : n;
          },
        });
      }
      return () => {
        for (const [name, descriptor] of saved) Object.defineProperty(TypedArrayPrototype, name, descriptor);
      };
    });
    assert.deepEqual(result.errors, []);
    assert.ok(result.accepted > 2000, `${result.accepted} bytes accepted`);
    assert.equal(result.received, result.accepted);
    assert.equal(result.foreign, 0);
  });

  it('Uint8Array[Symbol.species] replaced: the peer gets what was sent', () => {
    const result = queueThrough(() => {
      const whole = new Uint8Array(65536);
      // An own property of Uint8Array, over the one it inherits from %TypedArray%.
      Object.defineProperty(Uint8Array, Symbol.species, { configurable: true, get: () => function () { return whole; } });
      return () => void delete (Uint8Array as unknown as Record<symbol, unknown>)[Symbol.species];
    });
    assert.deepEqual(result.errors, []);
    assert.equal(result.received, result.accepted);
    assert.equal(result.foreign, 0);
  });
});

describe('a stream\'s write() is Node\'s Writable (README, "Buffer safety")', () => {
  it('a view that lies sends what its ArrayBuffer holds, never past it; a length beyond the ArrayBuffer throws from write()', async () => {
    const [a, b] = Socket.pair();
    const reactor = new Reactor();
    const stream = toStream(a, reactor);
    try {
      // Writable makes a Buffer from the view's own byteLength (as for node:net): the whole ArrayBuffer.
      const { view, whole } = liar('own properties', 16);
      await new Promise<void>((resolve, reject) => stream.write(view, (err) => (err ? reject(err) : resolve())));
      const got = drain(b);
      assert.equal(got.byteLength, WHOLE, 'the ArrayBuffer\'s bytes, no more');
      assert.deepEqual(got, Buffer.from(whole.buffer));
      const beyond = new Uint8Array(new ArrayBuffer(WHOLE), 0, 16);
      Object.defineProperty(beyond, 'byteLength', { value: WHOLE + 1 });
      assert.throws(() => stream.write(beyond), RangeError);
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(b.receiveInto(new Uint8Array(16)), 0, 'nothing was sent (0: nothing waiting)');
    } finally {
      stream.destroy();
      b.close();
      reactor.close();
    }
  });
});
