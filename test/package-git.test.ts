/**
 * Installing from a git checkout, the two ways a user does it before (or instead of) a release:
 * `npm install` in a clean clone builds dist/ by itself (the prepare script), after which
 * `npm install <folder>` in another project works; and `npm install git+file://<clone>` (what
 * `npm install github:owner/m-socket` does) builds and installs it in one step. Both then import
 * 'm-socket' from plain Node. The clone is of this repo's committed HEAD, as a user's would be.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { trackFds } from './helpers/fd.ts';
import { project, run } from './helpers/npm.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const NPM_FLAGS = ['--no-audit', '--no-fund', '--prefer-offline'];

/** A loopback round trip through the installed package: it loads, koffi works, the API answers. */
const CHECK = `
import { Listener, Multiplexer, Socket } from 'm-socket';
const mux = new Multiplexer();
const listener = Listener.listen({ host: '127.0.0.1', port: 0 });
const client = Socket.connect({ host: '127.0.0.1', port: listener.port });
client.send(new TextEncoder().encode('hi')); // queued while connecting; the multiplexer flushes it
mux.add(client);
mux.add(listener);
let server = null;
let got = '';
for (let round = 0; round < 200 && got.length < 2; round++) {
  for (const event of mux.wait(10)) {
    if (event.target === listener) (server = listener.accept()) && mux.add(server);
    else if (event.target === server) got += new TextDecoder().decode(server.receive().bytes);
  }
}
console.log('received ' + got);
client.destroy();
server?.destroy();
listener.close();
mux.close();
`;

function check(app: string): string {
  writeFileSync(join(app, 'check.mjs'), CHECK);
  return run('node', ['check.mjs'], app);
}

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

test('a clean git clone installs into another project, from its folder or as a git dependency', { timeout: 240_000 }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'm-socket-git-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const clone = join(tmp, 'm-socket');
  run('git', ['clone', '--quiet', ROOT, clone], tmp);
  assert.equal(existsSync(join(clone, 'dist')), false, 'a clean clone has no build output');

  await t.test('npm install in the clone builds dist/ (prepare)', () => {
    run('npm', ['ci', ...NPM_FLAGS], clone);
    for (const entry of ['dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/ffi/index.js']) {
      assert.ok(existsSync(join(clone, entry)), `${entry} not built by npm install`);
    }
  });

  await t.test('npm install <folder> in another project, then import', () => {
    const app = project(join(tmp, 'from-folder'));
    run('npm', ['install', clone, ...NPM_FLAGS], app);
    assert.equal(check(app), 'received hi\n');
  });

  await t.test('npm install git+file://<clone> builds and installs in one step, then import', () => {
    const app = project(join(tmp, 'from-git'));
    run('npm', ['install', `git+${pathToFileURL(clone).href}`, ...NPM_FLAGS], app);
    assert.ok(existsSync(join(app, 'node_modules', 'm-socket', 'dist', 'lib', 'index.js')), 'the git dependency was built');
    assert.equal(check(app), 'received hi\n');
  });
});
