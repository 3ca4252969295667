/**
 * The raw layer, for benchmarks and experiments (`import ... from 'm-socket/ffi'`): libc
 * prototypes, constants, struct layouts and the checked wrappers. Applications want `m-socket`.
 */
export * from './constants.ts';
export * from './layouts.ts';
export { libc, type LibcName } from './libc.ts';
export { ERRNO, errnoCodes, errnoName, errnoDescription } from './errno.ts';
export {
  sys,
  checked,
  checkedWait,
  checkedPoll,
  closeFd,
  ifNameToIndex,
  getaddrinfoAsync,
  freeAddrInfo,
  takeAddrInfo,
  type AddrInfoEntry,
  SocketError,
  WOULD_BLOCK,
  IN_PROGRESS,
  RING_BUSY,
  TIMED_OUT,
  INTERRUPTED,
  mapMemory,
  unmapMemory,
  type Mapping,
  type CheckedOptions,
  type ErrorDetails,
} from './syscall.ts';
