/** Starting the echo servers under test, each in its own process pinned to core 0. */
import { join } from 'node:path';
import { BENCH_DIR } from './build.ts';
import { Child, type SpawnOptions } from './proc.ts';

export type ServerKind =
  | 'm-socket'
  | 'm-socket io_uring'
  | 'm-socket loop'
  | 'm-socket io_uring loop'
  | 'm-socket io_uring send'
  | 'm-socket io_uring send loop'
  | 'm-socket rounds=1'
  | 'm-socket busy'
  | 'm-socket lib busy'
  | 'node:net'
  | 'C epoll'
  | 'C busy'
  | 'C io_uring'
  | 'C io_uring multi';

export interface Server {
  kind: ServerKind;
  child: Child;
  port: number;
}

export const SERVER_CORE = 0;
export const CLIENT_CORE = 1;

/**
 * The command line of a server kind. `cUring` is bench/c/uring_echo (the C io_uring server), null
 * where it did not compile: its kinds are unavailable then, as the C kinds are without `cEcho`.
 */
export function serverCommand(kind: ServerKind, cEcho: string | null, lifetimeS: number, nodeFlags: string[] = [], cUring: string | null = null): [string, string[]] | null {
  const ts = (file: string, ...args: string[]): [string, string[]] => [
    process.execPath,
    [...nodeFlags, '--import', 'tsx', join(BENCH_DIR, 'servers', file), ...args],
  ];
  switch (kind) {
    case 'm-socket':
      return ts('msocket-echo.ts', 'reactor', String(lifetimeS));
    case 'm-socket io_uring':
      return ts('msocket-echo.ts', 'reactor', String(lifetimeS), '--backend', 'io_uring');
    case 'm-socket loop':
      return ts('msocket-echo.ts', 'loop', String(lifetimeS));
    case 'm-socket io_uring loop':
      return ts('msocket-echo.ts', 'loop', String(lifetimeS), '--backend', 'io_uring');
    case 'm-socket io_uring send':
      return ts('msocket-echo.ts', 'reactor', String(lifetimeS), '--backend', 'io_uring', '--ring-send');
    case 'm-socket io_uring send loop':
      return ts('msocket-echo.ts', 'loop', String(lifetimeS), '--backend', 'io_uring', '--ring-send');
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
    case 'C io_uring':
      return cUring === null ? null : [cUring, ['0', 'link', String(lifetimeS)]];
    case 'C io_uring multi':
      return cUring === null ? null : [cUring, ['0', 'multi', String(lifetimeS)]];
  }
}

export async function startServer(
  kind: ServerKind,
  cEcho: string | null,
  options: SpawnOptions & { lifetimeS: number; nodeFlags?: string[]; cUring?: string | null; onUnsupported?: (why: string) => void },
): Promise<Server | null> {
  const cmd = serverCommand(kind, cEcho, options.lifetimeS, options.nodeFlags, options.cUring ?? null);
  if (cmd === null) return null;
  const child = new Child(cmd[0], cmd[1], { core: SERVER_CORE, ...options });
  let m: RegExpExecArray;
  try {
    m = await child.line(/^(?:PORT (\d+)|UNSUPPORTED ?(.*))/);
  } catch (err) {
    // Status 3: unavailable here (lib-busy without the library's busy-poll option, a backend or
    // an io_uring ring the kernel refuses), said on stdout just before.
    if (child.process.exitCode === 3) {
      options.onUnsupported?.('exited with status 3 (unsupported)');
      return null;
    }
    throw err;
  }
  if (m[1] === undefined) {
    options.onUnsupported?.(m[2] || 'unsupported');
    await child.kill();
    return null;
  }
  return { kind, child, port: Number(m[1]) };
}
