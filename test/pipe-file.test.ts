/**
 * examples/pipe-file.ts: copies a file through a loopback connection with stream.pipeline on
 * both ends; the copy must be byte-identical, and misuse must exit 2.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pattern } from './helpers/sockets.ts';
import { ROOT } from './helpers/server-process.ts';

const dir = mkdtempSync(join(tmpdir(), 'm-socket-pipe-file-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function pipeFile(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'examples/pipe-file.ts', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
}

test('pipe-file copies 24 MiB through a socket stream, byte for byte', () => {
  const source = join(dir, 'source.bin');
  const destination = join(dir, 'copy.bin');
  const bytes = pattern(24 * 1024 * 1024, 17);
  writeFileSync(source, bytes);
  const run = pipeFile(source, destination);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /copied 25165824 bytes in .* s \(.* MiB\/s\), sha256 ok/);
  assert.ok(readFileSync(destination).equals(bytes), 'the copy equals the source');
});

test('pipe-file exits 1 with one line for a missing source, and 2 for misuse', () => {
  const missing = pipeFile(join(dir, 'no-such-file'), join(dir, 'out.bin'));
  assert.equal(missing.status, 1, missing.stderr);
  assert.match(missing.stderr, /ENOENT|no such file/i);
  const misuse = pipeFile('only-one-argument');
  assert.equal(misuse.status, 2, misuse.stderr);
});
