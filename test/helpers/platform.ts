/**
 * Which emulator, if any, the suite runs under: `.ci/arm64` sets M_SOCKET_EMULATOR=qemu-user
 * when it runs the suite as linux-arm64 on an x86_64 host. Tests whose behaviour an emulator
 * changes (only what test/cmsg-truncation.test.ts proves) check the emulated behaviour then,
 * and fail when it is not what they expect, in either direction: never a silent skip.
 */
const KNOWN = ['qemu-user'] as const;

/** A known emulator name. */
export type Emulator = (typeof KNOWN)[number];

function fromEnvironment(): Emulator | null {
  const value = process.env.M_SOCKET_EMULATOR;
  if (value === undefined || value === '') return null;
  if (!(KNOWN as readonly string[]).includes(value)) {
    throw new Error(`M_SOCKET_EMULATOR=${value}: expected one of ${KNOWN.join(', ')} or nothing`);
  }
  return value as Emulator;
}

/** The emulator the suite was told it runs under, or null for a native run. */
export const EMULATOR: Emulator | null = fromEnvironment();

/**
 * For a call qemu-user 7.2 is known to refuse (a socket option it does not translate): under it,
 * asserts that `call` fails with `code` and returns true, so the test checks that answer and
 * stops there; natively runs `call`, which must succeed, and returns false. Never a silent skip:
 * either way something is asserted.
 */
export function refusedUnderEmulation(code: string, call: () => unknown): boolean {
  if (EMULATOR === 'qemu-user') {
    let thrown: unknown = null;
    try {
      call();
    } catch (err) {
      thrown = err;
    }
    if ((thrown as { code?: unknown } | null)?.code !== code) throw new Error(`under qemu-user, expected ${code}, got ${thrown === null ? 'success' : String(thrown)}`);
    return true;
  }
  call();
  return false;
}

/**
 * A child process's hang guard: `nativeMs` natively, five times that under an emulator. The
 * guard is there to end a hung child, not to time one: qemu-user runs a worker's start (tsx,
 * koffi, the library) some ten times slower than the host, so a run of 20 workers that takes
 * 7 s natively took over 60 s under it on the CI machine (stop 25, .ci/arm64).
 */
export function hangGuardMs(nativeMs: number): number {
  return EMULATOR === null ? nativeMs : 5 * nativeMs;
}
