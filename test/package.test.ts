/**
 * Packaging: `npm pack` (whose prepack runs the build) ships the compiled dist/ and nothing of the
 * sources or tests, and the tarball installed into a fresh project works from plain Node, without
 * tsx: both entry points, 'm-socket' and 'm-socket/ffi', resolve and load koffi.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The environment for nested npm/node runs, without what the outer run injected: npm's own
 * npm_* settings (this test may itself run under `npm test`), the test runner's context, and
 * c8's coverage directory (the installed copy is not the code under measurement).
 */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) || key === 'NODE_V8_COVERAGE' || key === 'NODE_TEST_CONTEXT' || key === 'NODE_OPTIONS') continue;
    env[key] = value;
  }
  return env;
}

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, env: cleanEnv(), encoding: 'utf8', timeout: 100_000 });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

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
    const app = join(tmp, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
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
});
