/**
 * Compiles the C tools of bench/c into bench/.build (gitignored) when `cc` exists. Rebuilds only
 * when a source is newer than its binary.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machine } from './proc.ts';

export const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const BUILD_DIR = join(BENCH_DIR, '.build');
export const C_TOOLS = ['echo_server', 'pingpong', 'bulk', 'connect_loop', 'hold'] as const;
export type CTool = (typeof C_TOOLS)[number];
/**
 * Tools that only bench/io-uring.ts needs: one that does not compile (uring_echo.c needs a
 * <linux/io_uring.h> with provided buffer rings, Linux 5.19 headers) is left out with its reason,
 * and the other benches run as before.
 */
export const OPTIONAL_C_TOOLS = ['uring_echo', 'paced', 'eventfd_wake'] as const;
export type OptionalCTool = (typeof OPTIONAL_C_TOOLS)[number];

export interface Built {
  /** Path of each tool, or null when C tools are unavailable. */
  tools: Record<CTool, string> | null;
  /** Why they are unavailable. */
  reason: string | null;
  /** Path of each optional tool that compiled (none when `tools` is null). */
  optional: Partial<Record<OptionalCTool, string>>;
  /** Why an optional tool is missing. */
  optionalReasons: Partial<Record<OptionalCTool, string>>;
}

/** Compiles bench/c/NAME.c into bench/.build/NAME when the source is newer; the error text, or null. */
function compile(name: string): string | null {
  const src = join(BENCH_DIR, 'c', `${name}.c`);
  const out = join(BUILD_DIR, name);
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    const r = spawnSync('cc', ['-O2', '-Wall', '-o', out, src], { encoding: 'utf8' });
    if (r.status !== 0) return `cc failed on ${name}.c: ${(r.stderr || r.error?.message || '').trim()}`;
  }
  return null;
}

export function buildC(): Built {
  if (!machine.cc) return { tools: null, reason: 'no C compiler (`cc`) on PATH: C server and C load generators skipped', optional: {}, optionalReasons: {} };
  mkdirSync(BUILD_DIR, { recursive: true });
  const tools = {} as Record<CTool, string>;
  for (const name of C_TOOLS) {
    const failed = compile(name);
    if (failed !== null) return { tools: null, reason: failed, optional: {}, optionalReasons: {} };
    tools[name] = join(BUILD_DIR, name);
  }
  const optional: Built['optional'] = {};
  const optionalReasons: Built['optionalReasons'] = {};
  for (const name of OPTIONAL_C_TOOLS) {
    const failed = compile(name);
    if (failed === null) optional[name] = join(BUILD_DIR, name);
    else optionalReasons[name] = failed;
  }
  return { tools, reason: null, optional, optionalReasons };
}
