/**
 * The events of one wait, for backends that gather them themselves (poll, io_uring; epoll reads
 * them from its kernel buffer): (slot, generation, bits) triples in reused typed arrays, so that
 * a wait allocates nothing. The backend's `slotAt`, `generationAt` and `bitsAt` (Backend) come
 * from here.
 */
export abstract class ReadyList {
  readonly #slots: Uint32Array;
  readonly #generations: Uint32Array;
  readonly #bits: Uint8Array;

  constructor(maxEvents: number) {
    this.#slots = new Uint32Array(maxEvents);
    this.#generations = new Uint32Array(maxEvents);
    this.#bits = new Uint8Array(maxEvents);
  }

  slotAt(index: number): number {
    return this.#slots[index];
  }

  generationAt(index: number): number {
    return this.#generations[index];
  }

  bitsAt(index: number): number {
    return this.#bits[index];
  }

  /** Sets event `index` of this wait (index < maxEvents). */
  protected setReady(index: number, slot: number, generation: number, bits: number): void {
    this.#slots[index] = slot;
    this.#generations[index] = generation;
    this.#bits[index] = bits;
  }
}
