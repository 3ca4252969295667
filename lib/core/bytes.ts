/**
 * A caller's Uint8Array as libc must see it: its real size and memory, read through the
 * intrinsic getters of `%TypedArray%.prototype`, never through the object itself.
 *
 * Why: `length`, `byteLength`, `byteOffset`, `buffer`, `subarray` and `set` are ordinary
 * properties, which a subclass (getters) or `Object.defineProperty` on the instance may redefine,
 * and `subarray` builds its result with whatever constructor the view names (`@@species`). koffi
 * hands libc the view's address from V8's own record of it; a size read from the object and
 * passed beside that address let the kernel read past the view (heap bytes went out in a send)
 * or write past it (a receive crashed the process with SIGSEGV) — found from outside. So every
 * size that travels to libc with a caller's view comes from here, taken from the same object
 * that is passed, and a part of a caller's view is cut without asking it (`partOf`).
 *
 * The getters are captured when the module loads, as Node's own primordials are, so a script
 * that later replaces `Uint8Array.prototype`'s properties (or `Uint8Array[Symbol.species]`, or
 * `globalThis.Uint8Array`) changes nothing here. The library's own buffers that reach libc (the
 * send queues' blocks, the receive buffer) are sized and cut by these too: such a script once
 * made a queue block look 4 KiB longer and send(2) read the heap past it (found from outside).
 * Calling one is no slower than reading the property: TurboFan inlines the builtin (a loop over
 * Buffers and Uint8Arrays, 11 ns against 27 for `.byteLength`, which met two maps there).
 */

const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;

function intrinsicGetter<T>(name: PropertyKey): (this: unknown) => T {
  const getter = Object.getOwnPropertyDescriptor(TypedArrayPrototype, name)?.get;
  if (getter === undefined) throw new Error(`%TypedArray%.prototype has no ${String(name)} getter`);
  return getter as (this: unknown) => T;
}

const tagOf = intrinsicGetter<string | undefined>(Symbol.toStringTag);
const byteLengthGetter = intrinsicGetter<number>('byteLength');
const byteOffsetGetter = intrinsicGetter<number>('byteOffset');
const bufferGetter = intrinsicGetter<ArrayBufferLike>('buffer');
/** Uint8Array as it was at load: `globalThis.Uint8Array` may be replaced later. */
export const ByteArray = Uint8Array;
const intrinsicSet = (Uint8Array.prototype as unknown as { set: (this: Uint8Array, source: ArrayLike<number>, offset?: number) => void }).set;

/**
 * Whether `value` is a real Uint8Array (Buffer and subclasses included, from any realm). Unlike
 * `instanceof`, a Proxy of one or `Object.create(Uint8Array.prototype)` is not: the intrinsic
 * tag getter answers for typed arrays only, and a Proxy has no typed array's internal slots.
 */
export function isUint8Array(value: unknown): value is Uint8Array {
  return tagOf.call(value) === 'Uint8Array';
}

/** The view's real size in bytes, whatever its `byteLength` property says (0 once detached). */
export function byteLengthOf(view: Uint8Array | Int32Array | Uint32Array): number {
  return byteLengthGetter.call(view);
}

/** The ArrayBuffer (or SharedArrayBuffer) the view really covers. */
export function bufferOf(view: Uint8Array): ArrayBufferLike {
  return bufferGetter.call(view);
}

/**
 * Bytes `start` to `end` of a caller's view as a plain Uint8Array over the same memory, made
 * without the view's `subarray` or constructor. `0 <= start <= end <= byteLengthOf(view)` is the
 * caller's to keep.
 */
export function partOf(view: Uint8Array, start: number, end: number): Uint8Array {
  return new ByteArray(bufferGetter.call(view), byteOffsetGetter.call(view) + start, end - start);
}

const BufferPrototype = Buffer.prototype;
const bufferFrom = Buffer.from;
const bufferAlloc = Buffer.alloc;
const getPrototypeOf = Object.getPrototypeOf;

/**
 * The first `n` bytes of a caller's view, as what a receive hands back: a Buffer for a Buffer,
 * else a plain Uint8Array, over the same memory, made without the view's `subarray` (its
 * `@@species` could answer a view of any size, and the echo of it would send that; found from
 * outside). `n` is cut to the view's size now (a resizable buffer may have shrunk since); for 0,
 * a fresh empty array (an empty view of a buffer that shrank below it cannot be made).
 */
export function headOf(view: Uint8Array, n: number): Uint8Array {
  const isBuffer = getPrototypeOf(view) === BufferPrototype;
  const size = byteLengthGetter.call(view);
  if (n > size) n = size;
  if (n === 0) return isBuffer ? bufferAlloc(0) : new ByteArray(0);
  const buffer = bufferGetter.call(view);
  const offset = byteOffsetGetter.call(view);
  return isBuffer ? bufferFrom(buffer, offset, n) : new ByteArray(buffer, offset, n);
}

/** `target.set(source, at)` by the intrinsic method, so a caller's object cannot stand in for it. */
export function copyBytes(target: Uint8Array, source: Uint8Array, at = 0): void {
  intrinsicSet.call(target, source, at);
}
