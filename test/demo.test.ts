/**
 * `npm start` runs examples/demo.ts: it must finish by itself, exit 0, and report verified echoes,
 * a refused connection, a name resolved, an fd passed and a connect timed out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runExample } from './helpers/server-process.ts';

test('demo (npm start) exits 0 by itself and reports verified echoes and ECONNREFUSED', { timeout: 30_000 }, async (t) => {
  // The same command as package.json's "start" script, without npm in between. The demo has its
  // own 10 s safety timer; the test's timeout only guards against that one failing.
  const started = performance.now();
  const { code, signal, stdout, stderr } = await runExample(t, 'examples/demo.ts', []);
  t.diagnostic(`demo ran in ${(performance.now() - started).toFixed(0)} ms`);

  const output = `stdout:\n${stdout}\nstderr:\n${stderr}`;
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, output);
  assert.match(stdout, /listening on 127\.0\.0\.1:\d+/, output);
  assert.match(stdout, /greeting .*\n\s+echo verified/, output);
  assert.match(stdout, /bulk .*\n\s+echo verified: 1048576 bytes/, output);
  assert.match(stdout, /echo verified: 8388608 bytes/, output);
  assert.match(stdout, /5\/5 echoes verified/, output);
  assert.match(stdout, /refused .*-> ECONNREFUSED/, output);
  assert.match(stdout, /names .*resolve\('localhost'\) -> /, output);
  assert.match(stdout, /noDelay = true \(set before connecting\)/, output);
  assert.match(stdout, /fds .*the receiver read: "a file opened by one side, read by the other"/, output);
  assert.match(stdout, /peerCredentials\(\) -> pid (\d+),.*\(this process: \1\)/, output);
  assert.match(stdout, /timeout .*-> ETIMEDOUT after \d+ ms/, output);
  assert.match(stdout, /all checks passed/, output);
  assert.doesNotMatch(stdout, /WRONG|FAILED/, output);
  assert.equal(stderr, '', 'nothing on stderr (no warnings, no leaks reported)');
});
