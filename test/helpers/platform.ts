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
