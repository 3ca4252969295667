/**
 * Per-slot typed arrays that grow with a backend's slots (io_uring's polls, receives and sends
 * keep one entry per slot; the multiplexer hands out slots from 0 up).
 */
type SlotArray = Int32Array | Uint32Array | Uint16Array | Uint8Array | Float64Array;

/** A copy of `old`, `length` entries long; entries past the old end are `fill` (default 0). */
export function grownTo<T extends SlotArray>(old: T, length: number, fill = 0): T {
  const next = new (old.constructor as new (n: number) => T)(length);
  if (fill !== 0) next.fill(fill, old.length);
  next.set(old);
  return next;
}
