/**
 * resolve(): literals answered in TypeScript, names through getaddrinfo on the threadpool, errors
 * shaped like Node's dns errors, abort, argument checks, and a lookup in flight never holding
 * the process. The machine has no network: only 'localhost' and the reserved '.invalid' TLD
 * (RFC 6761) are asserted on.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isIP } from '../lib/index.ts';
import { resolve, ResolveError } from '../lib/core/resolve.ts';
import { trackFds } from './helpers/fd.ts';
import { failNth, injectFaults } from '../ffi/faults.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESOLVE_MODULE = new URL('../lib/core/resolve.ts', import.meta.url).href;
/** The resolver may answer ENOTFOUND, or EAI_AGAIN where no DNS server can be reached at all. */
const NOT_FOUND_CODES = ['ENOTFOUND', 'EAI_AGAIN'];

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

/** True when `promise` has settled after a few microtask turns (so: no threadpool round trip). */
async function settlesWithinMicrotasks(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => (settled = true), () => (settled = true));
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return settled;
}

/** Runs a script with tsx in a child process; resolves with its exit code, output and duration. */
function runChild(script: string, args: string[] = [], timeoutMs = 20_000): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((done, fail) => {
    const started = performance.now();
    const child = spawn(process.execPath, [...args, '--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`child still running after ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stdout, stderr, ms: performance.now() - started });
    });
  });
}

describe('resolve: IP literals', () => {
  it('answers IPv4 and IPv6 literals at once, with the port, normalised as Node prints them', async () => {
    const cases: [string, object][] = [
      ['127.0.0.1', { family: 'IPv4', address: '127.0.0.1', port: 80 }],
      ['::1', { family: 'IPv6', address: '::1', port: 80 }],
      ['0:0:0:0:0:0:0:1', { family: 'IPv6', address: '::1', port: 80 }],
      ['::FFFF:1.2.3.4', { family: 'IPv6', address: '::ffff:1.2.3.4', port: 80 }],
      ['fe80::1%7', { family: 'IPv6', address: 'fe80::1', port: 80, scopeId: 7 }],
    ];
    for (const [host, expected] of cases) {
      const promise = resolve(host, { port: 80 });
      assert.equal(await settlesWithinMicrotasks(promise), true, `${host} is answered without a threadpool round trip`);
      assert.deepEqual(await promise, [expected], host);
    }
  });

  it('turns an interface-name zone into scopeId (lo)', async () => {
    const [addr] = await resolve('fe80::1%lo');
    assert.equal(addr.address, 'fe80::1');
    assert.ok(Number.isInteger(addr.scopeId) && addr.scopeId! > 0, `scopeId ${addr.scopeId}`);
  });

  it('names host (its own argument, not an option) when a literal\'s zone is no interface here', async () => {
    await assert.rejects(resolve('fe80::1%nonexist0'), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_INVALID_ARG_VALUE');
      assert.match(err.message, /^The argument "host" names zone "nonexist0"/);
      return true;
    });
    await assert.rejects(resolve('::1', { port: -1 }), { code: 'ERR_OUT_OF_RANGE', message: /"options\.port"/ });
  });

  it('defaults the port to 0 and accepts a matching family', async () => {
    assert.deepEqual(await resolve('10.1.2.3', { family: 4 }), [{ family: 'IPv4', address: '10.1.2.3', port: 0 }]);
    assert.deepEqual(await resolve('::', { family: 6 }), [{ family: 'IPv6', address: '::', port: 0 }]);
  });

  it('rejects a literal of the other family, naming options.family', async () => {
    await assert.rejects(resolve('127.0.0.1', { family: 6 }), { code: 'ERR_INVALID_ARG_VALUE', message: /"options.family".*IPv4/ });
    await assert.rejects(resolve('::1', { family: 4 }), { code: 'ERR_INVALID_ARG_VALUE', message: /"options.family".*IPv6/ });
  });
});

describe('resolve: names through getaddrinfo', () => {
  it("resolves 'localhost' to loopback addresses, with the port, each once", async () => {
    const addrs = await resolve('localhost', { port: 8080 });
    assert.ok(addrs.length >= 1);
    const texts = addrs.map((a) => a.address);
    assert.ok(texts.includes('127.0.0.1') || texts.includes('::1'), `localhost -> ${texts.join(', ')}`);
    assert.equal(new Set(texts).size, texts.length, `no duplicates: ${texts.join(', ')}`);
    for (const addr of addrs) {
      assert.equal(addr.port, 8080);
      assert.equal(isIP(addr.address), addr.family === 'IPv4' ? 4 : 6);
    }
  });

  it("filters by family: 'localhost' with family 4 gives IPv4 only, and 127.0.0.1 among them", async () => {
    const addrs = await resolve('localhost', { family: 4 });
    assert.ok(addrs.every((a) => a.family === 'IPv4'), JSON.stringify(addrs));
    assert.ok(addrs.some((a) => a.address === '127.0.0.1'), JSON.stringify(addrs));
  });

  it("family 6 for 'localhost' gives IPv6 only, or ENOTFOUND where the hosts file has no ::1 for it", async () => {
    try {
      const addrs = await resolve('localhost', { family: 6 });
      assert.ok(addrs.length > 0 && addrs.every((a) => a.family === 'IPv6'), JSON.stringify(addrs));
    } catch (err) {
      assert.ok(err instanceof ResolveError, String(err));
      assert.equal(err.code, 'ENOTFOUND');
    }
  });

  it('a name goes to the threadpool (not answered synchronously), and concurrent lookups agree', async () => {
    const promise = resolve('localhost');
    assert.equal(await settlesWithinMicrotasks(promise), false, 'a name needs a threadpool round trip');
    const expected = JSON.stringify(await promise);
    const results = await Promise.all(Array.from({ length: 20 }, () => resolve('localhost')));
    for (const r of results) assert.equal(JSON.stringify(r), expected, 'every concurrent lookup gives the same answer');
  });

  it("rejects a name that does not exist ('nonexistent.invalid') like Node's dns does", async () => {
    await assert.rejects(resolve('nonexistent.invalid', { port: 1 }), (err: unknown) => {
      assert.ok(err instanceof ResolveError, String(err));
      assert.ok(NOT_FOUND_CODES.includes(err.code), err.code);
      assert.equal(err.syscall, 'getaddrinfo');
      assert.equal(err.hostname, 'nonexistent.invalid');
      assert.ok(Number.isInteger(err.errno) && err.errno < 0, `errno ${err.errno} is the EAI_* value`);
      assert.equal(err.message, `getaddrinfo ${err.code} nonexistent.invalid`);
      return true;
    });
  });
});

describe('resolve: abort', () => {
  it('rejects at once with an AbortError when the signal is already aborted (literal or name)', async () => {
    const signal = AbortSignal.abort(new Error('reason'));
    for (const host of ['127.0.0.1', 'localhost']) {
      const promise = resolve(host, { signal });
      assert.equal(await settlesWithinMicrotasks(promise), true);
      await assert.rejects(promise, (err: Error & { code?: string; cause?: unknown }) => {
        assert.equal(err.name, 'AbortError');
        assert.equal(err.code, 'ABORT_ERR');
        assert.equal((err.cause as Error).message, 'reason');
        return true;
      });
    }
  });

  it('rejects at once when aborted during a lookup; the lookup result that arrives later is dropped', async () => {
    const controller = new AbortController();
    const promise = resolve('localhost', { signal: controller.signal });
    controller.abort();
    assert.equal(await settlesWithinMicrotasks(promise), true, 'rejected without waiting for the threadpool');
    await assert.rejects(promise, { name: 'AbortError' });
    // The threadpool call is still running: let it finish, and look for no late fallout.
    const afterwards = await resolve('localhost');
    assert.ok(afterwards.length > 0);
  });

  it('a signal that never aborts does not change the answer', async () => {
    const controller = new AbortController();
    const addrs = await resolve('localhost', { signal: controller.signal });
    assert.ok(addrs.length > 0);
    controller.abort(); // after the fact: nothing happens
  });
});

describe('resolve: bad arguments', () => {
  it('each gives an error naming the argument', async () => {
    const cases: [unknown, unknown, string, RegExp][] = [
      [42, undefined, 'ERR_INVALID_ARG_TYPE', /"host"/],
      [undefined, undefined, 'ERR_INVALID_ARG_TYPE', /"host"/],
      ['', undefined, 'ERR_INVALID_ARG_VALUE', /"host".*empty/],
      ['local\0host', undefined, 'ERR_INVALID_ARG_VALUE', /"host".*NUL/],
      ['localhost', 'tcp', 'ERR_INVALID_ARG_VALUE', /"options"/],
      ['localhost', null, 'ERR_INVALID_ARG_VALUE', /"options"/],
      ['localhost', { family: 5 }, 'ERR_INVALID_ARG_VALUE', /"options.family"/],
      ['localhost', { family: '4' }, 'ERR_INVALID_ARG_VALUE', /"options.family"/],
      ['localhost', { port: 70000 }, 'ERR_OUT_OF_RANGE', /"options.port"/],
      ['localhost', { port: -1 }, 'ERR_OUT_OF_RANGE', /"options.port"/],
      ['localhost', { port: NaN }, 'ERR_OUT_OF_RANGE', /"options.port"/],
      ['localhost', { port: '80' }, 'ERR_INVALID_ARG_TYPE', /"options.port"/],
      ['localhost', { signal: {} }, 'ERR_INVALID_ARG_TYPE', /"options.signal"/],
      ['127.0.0.1', { port: 1.5 }, 'ERR_OUT_OF_RANGE', /"options.port"/],
    ];
    for (const [host, options, code, message] of cases) {
      await assert.rejects(resolve(host as string, options as never), { code, message }, `${String(host)} ${JSON.stringify(options)}`);
    }
  });
});

describe('resolve: a lookup in flight and process exit', () => {
  it('a process that starts lookups and then does nothing exits by itself', async () => {
    const script = `
      import { resolve } from ${JSON.stringify(RESOLVE_MODULE)};
      resolve('nonexistent.invalid').catch(() => {});
      resolve('localhost');
      console.log('started');
    `;
    const { code, signal, stdout, stderr, ms } = await runChild(script);
    assert.equal(signal, null, stderr);
    assert.equal(code, 0, stderr);
    assert.equal(stdout, 'started\n');
    assert.ok(ms < 15_000, `exited after ${ms} ms`);
  });

  it('process.exit() during a lookup is not delayed and exits with its code', async () => {
    const script = `
      import { resolve } from ${JSON.stringify(RESOLVE_MODULE)};
      for (let i = 0; i < 8; i++) resolve('localhost');
      resolve('nonexistent.invalid').catch(() => {});
      process.exit(7);
    `;
    const { code, stderr, ms } = await runChild(script);
    assert.equal(code, 7, stderr);
    assert.equal(stderr, '');
    assert.ok(ms < 15_000, `exited after ${ms} ms`);
  });

  it('buffers survive garbage collection during many lookups (every answer is right)', async () => {
    // With --expose-gc the child forces full collections (which move small on-heap arrays)
    // while lookups run on the threadpool: a buffer that was not kept alive or moved would give
    // wrong answers or crash.
    const script = `
      import { resolve } from ${JSON.stringify(RESOLVE_MODULE)};
      const expected = JSON.stringify(await resolve('localhost', { port: 1 }));
      let wrong = 0;
      for (let round = 0; round < 10; round++) {
        const lookups = Array.from({ length: 20 }, (_, i) => resolve('localhost', { port: 1 }).then((r) => {
          if (JSON.stringify(r) !== expected) wrong++;
        }));
        for (let i = 0; i < 3; i++) { globalThis.gc(); new Array(1e5).fill({}); }
        await Promise.all(lookups);
      }
      console.log('wrong', wrong);
    `;
    const { code, stdout, stderr } = await runChild(script, ['--expose-gc']);
    assert.equal(code, 0, stderr);
    assert.equal(stdout, 'wrong 0\n');
  });
});

describe('resolve: many at once (issue 11, finding 10)', () => {
  it('1,000 concurrent lookups (koffi refuses more than 256 asynchronous calls) all resolve, and agree', async () => {
    const expected = JSON.stringify(await resolve('localhost', { port: 2 }));
    const results = await Promise.allSettled(Array.from({ length: 1000 }, () => resolve('localhost', { port: 2 })));
    const rejected = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    assert.deepEqual(rejected.slice(0, 3), [], `${rejected.length} of 1000 rejected`);
    for (const r of results) assert.equal(JSON.stringify((r as PromiseFulfilledResult<unknown>).value), expected);
  });

  it('300 lookups sharing one AbortSignal put one listener on it (no MaxListenersExceededWarning), all abort, and leave none', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      const controller = new AbortController();
      const aborted = Array.from({ length: 300 }, () => resolve('localhost', { signal: controller.signal }));
      assert.equal(getEventListeners(controller.signal, 'abort').length, 1);
      controller.abort();
      const results = await Promise.allSettled(aborted);
      assert.deepEqual(new Set(results.map((r) => r.status === 'rejected' && (r.reason as Error).name)), new Set(['AbortError']));
      const kept = new AbortController();
      const answers = await Promise.all(Array.from({ length: 300 }, () => resolve('localhost', { signal: kept.signal })));
      assert.equal(answers.length, 300);
      assert.equal(getEventListeners(kept.signal, 'abort').length, 0, 'the listener left with the last lookup');
      kept.abort(); // nothing watches any more: nothing happens
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(warnings.map((w) => w.name), []);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a lookup waiting in the queue and then aborted is never started, and rejects at once', async () => {
    using faults = injectFaults(() => null, ['getaddrinfo']);
    const first = Array.from({ length: 200 }, () => resolve('localhost'));
    const controller = new AbortController();
    const queued = resolve('localhost', { signal: controller.signal });
    controller.abort();
    assert.equal(await settlesWithinMicrotasks(queued), true);
    await assert.rejects(queued, { name: 'AbortError' });
    await Promise.all(first);
    assert.equal(faults.count('getaddrinfo'), 200, 'the aborted lookup never reached getaddrinfo');
  });

  it('koffi refusing a call: retried once a lookup of ours finishes; with none in flight, a ResolveError with a code', async () => {
    {
      // Refuse the 40th start (others are in flight): it waits and is retried.
      using faults = injectFaults(failNth('getaddrinfo', 40, { throws: new Error('Too many asynchronous calls are running') }), ['getaddrinfo']);
      const results = await Promise.allSettled(Array.from({ length: 100 }, () => resolve('localhost')));
      assert.deepEqual(results.filter((r) => r.status === 'rejected'), []);
      assert.equal(faults.count('getaddrinfo'), 101, 'the refused start was made again');
    }
    {
      using _ = injectFaults(failNth('getaddrinfo', 1, { throws: new Error('Too many asynchronous calls are running') }), ['getaddrinfo']);
      await assert.rejects(resolve('localhost'), (err: unknown) => {
        assert.ok(err instanceof ResolveError);
        assert.equal(err.code, 'EAI_AGAIN');
        assert.match(String((err as Error).cause), /Too many asynchronous calls/);
        return true;
      });
    }
    assert.ok((await resolve('localhost')).length > 0, 'later lookups work');
  });
});
