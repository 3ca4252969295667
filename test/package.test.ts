/**
 * Packaging: `npm pack` (whose prepare script runs the build) ships the compiled dist/ and nothing
 * of the sources or tests, and the tarball installed into a fresh project works from plain Node,
 * without tsx: both entry points, 'm-socket' and 'm-socket/ffi', resolve and load koffi. A
 * TypeScript project with a demanding user's settings (strict, skipLibCheck false,
 * exactOptionalPropertyTypes, noUncheckedIndexedAccess) compiles against the installed package's
 * .d.ts with no cast, and refuses what the types must refuse (test/fixtures/consumer/).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { trackFds } from './helpers/fd.ts';
import { project, run } from './helpers/npm.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CONSUMER = join(ROOT, 'test', 'fixtures', 'consumer');
/** The repo's own TypeScript compiler, and the @types/node it is checked with (both from the npm cache). */
const TSC = join(ROOT, 'node_modules', '.bin', 'tsc');
const TYPES_NODE = `@types/node@${(JSON.parse(readFileSync(join(ROOT, 'node_modules', '@types', 'node', 'package.json'), 'utf8')) as { version: string }).version}`;

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

test('npm pack ships dist/ only, and the installed tarball runs under plain Node', { timeout: 120_000 }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'm-socket-pack-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));

  const out = run('npm', ['pack', '--pack-destination', tmp, '--json'], ROOT);
  // Lifecycle scripts may print before the JSON; it starts at the first line that is "[".
  const [info] = JSON.parse(out.slice(out.search(/^\[/m))) as [{ filename: string; files: { path: string }[] }];
  const files = info.files.map((f) => f.path);
  const tarball = join(tmp, info.filename);

  await t.test('the tarball holds the compiled entry points and no sources or tests', () => {
    for (const entry of ['dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/ffi/index.js', 'dist/ffi/index.d.ts', 'package.json']) {
      assert.ok(files.includes(entry), `${entry} missing from the tarball`);
    }
    assert.deepEqual(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), [], 'TypeScript sources');
    assert.deepEqual(files.filter((f) => /(^|\/)test\//.test(f) || f.endsWith('.test.js')), [], 'test files');
    const allowed = /^(dist\/.+|package\.json|README\.md|LICENSE)$/;
    assert.deepEqual(files.filter((f) => !allowed.test(f)), [], 'files outside dist/ and the docs');
  });

  await t.test('installed into a fresh project, both entry points load', () => {
    const app = project(join(tmp, 'app'));
    // koffi comes from the npm cache (it is this repo's own dependency), so no registry is needed.
    run('npm', ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline'], app);
    writeFileSync(
      join(app, 'check.mjs'),
      [
        "import { SIZEOF, errnoName } from 'm-socket/ffi';",
        'console.log(`ffi ${SIZEOF.sockaddr_in6} ${errnoName(111)}`);',
        "const main = await import('m-socket');",
        'console.log(`main ${typeof main.SocketError}`);',
      ].join('\n'),
    );
    assert.equal(run('node', ['check.mjs'], app), 'ffi 28 ECONNREFUSED\nmain function\n');
  });

  await t.test('a strict TypeScript project compiles against the installed .d.ts without casts, and runs', () => {
    const app = project(join(tmp, 'consumer'));
    cpSync(CONSUMER, app, { recursive: true });
    run('npm', ['install', tarball, TYPES_NODE, '--no-audit', '--no-fund', '--prefer-offline'], app);
    // skipLibCheck false: the package's own .d.ts are checked too (TS2420 "incorrectly implements"
    // came from there); every @ts-expect-error of type-errors.ts must still be an error (TS2578).
    run(TSC, ['-p', app], app);
    assert.equal(
      run('node', [join('out', 'main.js')], app),
      [
        'reactor: hello',
        'multiplexer: ping (1 accepted)',
        'promises: streamed, then ECONNREFUSED connect',
        'unix: port undefined, path kept, 1 byte with an OwnedFd, uid mine',
        '',
      ].join('\n'),
    );
  });
});
