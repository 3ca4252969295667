/**
 * Compile and run a small C program, for tests that check our numbers against the C headers.
 * Returns null only when there is no C compiler; a program that fails to compile or run throws,
 * so a wrong field or constant name is a test failure, not a silent skip.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The first line of `cc --version`, or null when `cc` cannot be run. */
export function ccVersion(): string | null {
  const r = spawnSync('cc', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return r.stdout.split('\n')[0] ?? '';
}

/** Compiles `source` with `cc -O0`, runs it, and returns its stdout; null when there is no cc. */
export function compileC(source: string): string | null {
  if (ccVersion() === null) return null;
  const dir = mkdtempSync(join(tmpdir(), 'm-socket-cc-'));
  try {
    const src = join(dir, 'probe.c');
    const exe = join(dir, 'probe');
    writeFileSync(src, source);
    const build = spawnSync('cc', ['-O0', '-Wall', '-o', exe, src], { encoding: 'utf8' });
    if (build.status !== 0) throw new Error(`cc failed (${build.status}):\n${build.stderr}`);
    const run = spawnSync(exe, [], { encoding: 'utf8' });
    if (run.error) throw run.error;
    if (run.status !== 0) throw new Error(`C program exited with ${run.status}:\n${run.stderr}`);
    return run.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
