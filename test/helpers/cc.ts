/**
 * Compile and run a small C program, for tests that check our numbers against the C headers.
 * Returns null only when there is no C compiler; a program that fails to compile or run throws,
 * so a wrong field or constant name is a test failure, not a silent skip.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The first line of `<compiler> --version`, or null when it cannot be run. */
export function ccVersion(compiler = 'cc'): string | null {
  const r = spawnSync(compiler, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return r.stdout.split('\n')[0] ?? '';
}

/** Runs `fn` with a fresh temporary folder holding `probe.c`, and removes the folder after. */
function withSource<T>(source: string, fn: (dir: string, src: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'm-socket-cc-'));
  try {
    const src = join(dir, 'probe.c');
    writeFileSync(src, source);
    return fn(dir, src);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Compiles `source` with `cc -O0`, runs it with `args`, and returns its stdout; null when there
 * is no cc. Under emulation `cc` is the target's cross compiler and the program runs emulated
 * too (binfmt_misc), so it sees what the library sees.
 */
export function compileC(source: string, args: readonly string[] = []): string | null {
  if (ccVersion() === null) return null;
  return withSource(source, (dir, src) => {
    const exe = join(dir, 'probe');
    const build = spawnSync('cc', ['-O0', '-Wall', '-o', exe, src], { encoding: 'utf8' });
    if (build.status !== 0) throw new Error(`cc failed (${build.status}):\n${build.stderr}`);
    const run = spawnSync(exe, args, { encoding: 'utf8', timeout: 30_000 });
    if (run.error) throw run.error;
    if (run.status !== 0) throw new Error(`C program exited with ${run.status}:\n${run.stderr}`);
    return run.stdout;
  });
}

/**
 * Compiles `source` to assembly with `compiler` (any target: nothing is run) and returns the
 * 64-bit constant each global `const long long NAME = ...;` was given. This reads another
 * architecture's sizeof/offsetof/#define values with nothing but its cross compiler.
 */
export function compileTimeValues(compiler: string, source: string): Map<string, number> {
  return withSource(source, (_dir, src) => {
    const build = spawnSync(compiler, ['-O0', '-Wall', '-S', '-o', '-', src], { encoding: 'utf8' });
    if (build.error) throw build.error;
    if (build.status !== 0) throw new Error(`${compiler} failed (${build.status}):\n${build.stderr}`);
    // gcc emits `NAME:` then `.quad N` (x86_64) / `.xword N` (aarch64), or `.zero 8` for 0.
    const values = new Map<string, number>();
    const re = /^([A-Za-z_]\w*):\s*\n\s*\.(quad|xword|8byte|dword|zero)\s+(-?\w+)\s*$/gm;
    for (const [, name, directive, value] of build.stdout.matchAll(re)) {
      values.set(name, directive === 'zero' ? 0 : Number(value));
    }
    return values;
  });
}
