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
 * that later replaces `Uint8Array.prototype`'s properties changes nothing here. Calling one is
 * no slower than reading the property: TurboFan inlines the builtin (a loop over Buffers and
 * Uint8Arrays, 11 ns against 27 for `.byteLength`, which met two maps there).
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
  return new Uint8Array(bufferGetter.call(view), byteOffsetGetter.call(view) + start, end - start);
}

/** `target.set(source, at)` by the intrinsic method, so a caller's object cannot stand in for it. */
export function copyBytes(target: Uint8Array, source: Uint8Array, at = 0): void {
  intrinsicSet.call(target, source, at);
}
