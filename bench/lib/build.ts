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

export interface Built {
  /** Path of each tool, or null when C tools are unavailable. */
  tools: Record<CTool, string> | null;
  /** Why they are unavailable. */
  reason: string | null;
}

export function buildC(): Built {
  if (!machine.cc) return { tools: null, reason: 'no C compiler (`cc`) on PATH: C server and C load generators skipped' };
  mkdirSync(BUILD_DIR, { recursive: true });
  const tools = {} as Record<CTool, string>;
  for (const name of C_TOOLS) {
    const src = join(BENCH_DIR, 'c', `${name}.c`);
    const out = join(BUILD_DIR, name);
    if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
      const r = spawnSync('cc', ['-O2', '-Wall', '-o', out, src], { encoding: 'utf8' });
      if (r.status !== 0) return { tools: null, reason: `cc failed on ${name}.c: ${(r.stderr || r.error?.message || '').trim()}` };
    }
    tools[name] = out;
  }
  return { tools, reason: null };
}
