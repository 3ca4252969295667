/**
 * Runs test/fixtures/cmsg-truncation.c, which shows what the platform does with SCM_RIGHTS fds
 * that do not fit the receiver's control buffer, and predicts its answer natively and under
 * qemu-user (which hands the kernel a control buffer twice the size the program asked for).
 */
import { readFileSync } from 'node:fs';
import { cmsgLen } from '../../ffi/layouts.ts';
import { compileC } from './cc.ts';
import type { Emulator } from './platform.ts';

/** What one recvmsg did (see the C file). */
export interface CmsgOutcome {
  /** MSG_CTRUNC was set. */
  ctrunc: boolean;
  /** Fds in the control buffer the program got back. */
  seen: number;
  /** Fds that appeared in the process: more than `seen` means some are open and invisible. */
  installed: number;
}

const SOURCE = readFileSync(new URL('../fixtures/cmsg-truncation.c', import.meta.url), 'utf8');

/** Sends `sent` fds and receives them with `controlLength` bytes of control buffer, in C. */
export function runCmsgProbe(sent: number, controlLength: number): CmsgOutcome {
  const stdout = compileC(SOURCE, [String(sent), String(controlLength)]);
  if (stdout === null) throw new Error('no C compiler (cc): install one (apt-get install gcc) to run the cmsg probe');
  const values = new Map(stdout.trim().split('\n').map((line) => {
    const [key, value] = line.split(' ');
    return [key, Number(value)] as const;
  }));
  const get = (key: string): number => {
    const value = values.get(key);
    if (value === undefined || !Number.isInteger(value)) throw new Error(`cmsg probe printed no ${key}:\n${stdout}`);
    return value;
  };
  return { ctrunc: get('ctrunc') === 1, seen: get('seen'), installed: get('installed') };
}

/** Fds whose numbers fit in a control buffer of `length` bytes after one cmsghdr. */
const room = (length: number): number => Math.floor((length - cmsgLen(0)) / 4);

/**
 * The outcome Linux gives (emulator null): it fills the buffer, installs only the fds that fit,
 * and sets MSG_CTRUNC when some did not. Under qemu-user the kernel gets a buffer twice as big:
 * it installs up to twice as many fds and sets MSG_CTRUNC only when even those do not fit; qemu
 * copies back what fits the program's buffer, so the rest are open but invisible.
 */
export function expectedCmsgOutcome(sent: number, controlLength: number, emulator: Emulator | null): CmsgOutcome {
  const kernelLength = emulator === 'qemu-user' ? 2 * controlLength : controlLength;
  const installed = Math.min(sent, room(kernelLength));
  return { ctrunc: sent > room(kernelLength), seen: Math.min(installed, room(controlLength)), installed };
}
