/**
 * Running npm, node and tsc the way a user does, from a test: in another folder, with an
 * environment free of what the outer run injected, and failing with everything they printed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The environment for nested npm/node runs, without what the outer run injected: npm's own
 * npm_* settings (this test may itself run under `npm test`), the test runner's context, and
 * c8's coverage directory (the installed copy is not the code under measurement).
 */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) || key === 'NODE_V8_COVERAGE' || key === 'NODE_TEST_CONTEXT' || key === 'NODE_OPTIONS') continue;
    env[key] = value;
  }
  return env;
}

/** Runs `cmd` in `cwd` to its end (at most 100 s) and returns its stdout; fails on a non-zero exit. */
export function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, env: cleanEnv(), encoding: 'utf8', timeout: 100_000 });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** A fresh, empty ES-module project in `dir` (created). */
export function project(dir: string): string {
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  return dir;
}
