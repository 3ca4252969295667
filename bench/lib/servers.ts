/** Starting the echo servers under test, each in its own process pinned to core 0. */
import { join } from 'node:path';
import { BENCH_DIR } from './build.ts';
import { Child, type SpawnOptions } from './proc.ts';

export type ServerKind = 'm-socket' | 'm-socket io_uring' | 'm-socket rounds=1' | 'm-socket busy' | 'm-socket lib busy' | 'node:net' | 'C epoll' | 'C busy';

export interface Server {
  kind: ServerKind;
  child: Child;
  port: number;
}

export const SERVER_CORE = 0;
export const CLIENT_CORE = 1;

export function serverCommand(kind: ServerKind, cEcho: string | null, lifetimeS: number, nodeFlags: string[] = []): [string, string[]] | null {
  const ts = (file: string, ...args: string[]): [string, string[]] => [
    process.execPath,
    [...nodeFlags, '--import', 'tsx', join(BENCH_DIR, 'servers', file), ...args],
  ];
  switch (kind) {
    case 'm-socket':
      return ts('msocket-echo.ts', 'reactor', String(lifetimeS));
    case 'm-socket io_uring':
      return ts('msocket-echo.ts', 'reactor', String(lifetimeS), '--backend', 'io_uring');
    case 'm-socket rounds=1':
      return ts('msocket-echo.ts', 'rounds1', String(lifetimeS));
    case 'm-socket lib busy':
      return ts('msocket-echo.ts', 'lib-busy', String(lifetimeS), '200');
    case 'm-socket busy':
      return ts('msocket-echo.ts', 'busy', String(lifetimeS), '200');
    case 'node:net':
      return ts('net-echo.ts', 'pipe', String(lifetimeS));
    case 'C epoll':
      return cEcho === null ? null : [cEcho, ['0', String(lifetimeS), '1000']];
    case 'C busy':
      return cEcho === null ? null : [cEcho, ['0', String(lifetimeS), '0']];
  }
}

export async function startServer(
  kind: ServerKind,
  cEcho: string | null,
  options: SpawnOptions & { lifetimeS: number; nodeFlags?: string[] },
): Promise<Server | null> {
  const cmd = serverCommand(kind, cEcho, options.lifetimeS, options.nodeFlags);
  if (cmd === null) return null;
  const child = new Child(cmd[0], cmd[1], { core: SERVER_CORE, ...options });
  let m: RegExpExecArray;
  try {
    m = await child.line(/^(?:PORT (\d+)|UNSUPPORTED)/);
  } catch (err) {
    // lib-busy exits with status 3 when the library has no busy-poll option yet.
    if (kind === 'm-socket lib busy' && child.process.exitCode === 3) return null;
    throw err;
  }
  if (m[1] === undefined) {
    await child.kill();
    return null;
  }
  return { kind, child, port: Number(m[1]) };
}
