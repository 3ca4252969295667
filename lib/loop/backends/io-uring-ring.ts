/**
 * One io_uring instance seen from JavaScript: set up with io_uring_setup(2), its rings mapped
 * with mmap(2) and read and written through typed arrays over the mappings (no copy, no native
 * code of ours). The io_uring backend (io-uring.ts) builds readiness on top of this; this file
 * knows rings, entries and the enter call, nothing of sockets.
 *
 * ## Memory ordering
 * The kernel and this thread share four indices: the SQ head (kernel writes) and tail (we write),
 * the CQ head (we write) and tail (kernel writes), plus the SQ flags word (kernel writes). Those
 * are touched ONLY with `Atomics.load` / `Atomics.store` (which work on koffi's non-shared
 * ArrayBuffers); entry bodies (SQEs, CQEs) are plain typed-array accesses, ordered by them:
 * - SQ: we write the SQE body, then release-store the tail (`#publish`): whoever sees the new
 *   tail sees the body. We acquire-load the head before reusing an entry the kernel has read.
 * - CQ: we acquire-load the tail, then read the CQE bodies below it, then release-store the head:
 *   the kernel may overwrite an entry only once it sees that we are done with it.
 * - x86_64 (TSO): loads are acquire and stores release in hardware; the hazard is the compiler
 *   (V8 could keep a field the kernel changes in a register, or sink a store past another).
 *   Atomics stop that. V8 emits `mov` for Atomics.load and `xchg` for Atomics.store, a full fence
 *   paid once per submit and once per drain.
 * - aarch64: plain accesses would not do (SQE stores could become visible after the tail store;
 *   CQE loads could be satisfied before the tail load). V8's seq_cst Atomics.load/store compile to
 *   LDAR/STLR there, exactly liburing's io_uring_smp_load_acquire / io_uring_smp_store_release.
 * - With SINGLE_ISSUER | DEFER_TASKRUN (no SQPOLL) every kernel access to these rings happens
 *   inside io_uring_enter on this thread, so the syscall itself orders everything; the atomics are
 *   what keep the same code right on a ring set up without those flags (older kernels), where
 *   completions are posted from other contexts.
 *
 * ## Buffers the kernel holds
 * The rings live in anonymous memory of ours, given to the kernel at setup (IORING_SETUP_NO_MMAP),
 * where the kernel takes it (Linux 6.5, and several pages of it on newer kernels); elsewhere they
 * are the kernel's own memory, mapped from the ring fd. Either stays mapped until `close`.
 *
 * Why our own memory first: a mapping of the ring fd holds the ring, and the ring holds the file
 * of every request armed in it (a poll, an accept: the listener, the socket). A worker thread
 * that ends without closing its multiplexer (`terminate()` runs no JavaScript) has its fds
 * closed by Node at teardown (ffi/teardown.ts), the ring fd among them, but not its mappings: the
 * ring then lived on, and with it every file its requests held, for the life of the process (a
 * terminated worker's listener kept taking connections into its backlog). With memory of our
 * own, closing the ring fd destroys the ring, which cancels its requests and lets go of their
 * files; the anonymous pages (some 100 KiB) are what such a worker leaves behind. The timeout
 * block of a timed wait (`#waitArg`) is referenced by address from the getevents argument; it is
 * more than 64 bytes, so V8 keeps its bytes off the heap, at one address, for as long as this
 * object holds it.
 *
 * Struct offsets come from ffi/layouts.ts (checked against <linux/io_uring.h>). Fields of 64 bits
 * (user_data, addresses) are written as two 32-bit words, low word first: both supported
 * architectures run little-endian.
 */
import koffi from 'koffi';
import {
  IORING_ENTER_EXT_ARG,
  IORING_ENTER_GETEVENTS,
  IORING_FEAT_EXT_ARG,
  IORING_FEAT_SINGLE_MMAP,
  IORING_OFF_CQ_RING,
  IORING_OFF_SQ_RING,
  IORING_OFF_SQES,
  IORING_SETUP_CLAMP,
  IORING_SETUP_CQSIZE,
  IORING_SETUP_DEFER_TASKRUN,
  IORING_SETUP_NO_MMAP,
  IORING_SETUP_SINGLE_ISSUER,
  IORING_SETUP_SUBMIT_ALL,
  IORING_SETUP_TASKRUN_FLAG,
  IORING_SQ_TASKRUN,
  IORING_SQ_CQ_OVERFLOW,
  MAP_ANONYMOUS,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../../../ffi/constants.ts';
import { ERRNO } from '../../../ffi/errno.ts';
import { OFFSETOF, RING_USER_ADDR_AT, SIZEOF } from '../../../ffi/layouts.ts';
import { closeFd, INTERRUPTED, sys, SocketError, type Mapping } from '../../../ffi/syscall.ts';
import { closeAtTeardown, keepAtTeardown } from '../../../ffi/teardown.ts';

const SQE_WORDS = SIZEOF.io_uring_sqe >> 2;
// entry() zeroes an SQE word by word, sixteen of them.
if (SQE_WORDS !== 16) throw new Error(`io_uring_sqe is ${SIZEOF.io_uring_sqe} bytes in ffi/layouts.ts, not 64`);
const CQE_WORDS = SIZEOF.io_uring_cqe >> 2;
const SQE = OFFSETOF.io_uring_sqe;
const CQE = OFFSETOF.io_uring_cqe;
const PARAMS = OFFSETOF.io_uring_params;
const SQ_OFF = OFFSETOF.io_sqring_offsets;
const CQ_OFF = OFFSETOF.io_cqring_offsets;
const ARG = OFFSETOF.io_uring_getevents_arg;
/** Where the timespec of a timed wait lies in `#waitArg`, after the getevents argument. */
const TIMESPEC_AT = 32;
const WAIT_ARG_SIZE = 128;

/**
 * The setups tried in order: the fast one in memory of ours (see "Buffers the kernel holds"),
 * the fast one mapped (Linux 6.1+), then a plain ring (Linux 5.11+ for EXT_ARG).
 */
const FAST_SETUP = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL;
const BASE_SETUP = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
const SETUPS = [FAST_SETUP | BASE_SETUP | IORING_SETUP_NO_MMAP, FAST_SETUP | BASE_SETUP, BASE_SETUP];
/** Without DEFER_TASKRUN (`deferred` false: a Reactor's ring where the kernel signals a deferred ring's eventfd late). */
const PLAIN_SETUPS = [BASE_SETUP | IORING_SETUP_NO_MMAP, BASE_SETUP];
const PAGE = 4096;
const pageAligned = (n: number) => Math.ceil(n / PAGE) * PAGE;

export class Ring {
  readonly fd: number;
  /** Whether completions are posted only inside our own io_uring_enter (IORING_SETUP_DEFER_TASKRUN). */
  readonly deferTaskrun: boolean;
  /** IORING_FEAT_* bits the kernel reported. */
  readonly features: number;
  /** Whether the rings are in memory of ours (IORING_SETUP_NO_MMAP), not mapped from the ring fd. */
  readonly ownMemory: boolean;
  readonly sqEntries: number;
  readonly cqEntries: number;
  #maps: Mapping[] = [];
  #sq: Uint32Array;
  #sqHead: number;
  #sqTail: number;
  #sqFlags: number;
  #sqMask: number;
  /** Our copy of the SQ tail: entries below it are written; published by `#publish`. */
  #tail: number;
  #sqe32: Uint32Array;
  #sqe8: Uint8Array;
  #sqe16: Uint16Array;
  #cq: Uint32Array;
  #cqI32: Int32Array;
  #cqHead: number;
  #cqTail: number;
  #cqMask: number;
  #cqes: number;
  /** Our copy of the CQ head: entries below it are consumed (published by `release`). */
  #head: number;
  /** getevents argument + timespec for timed waits (see "Buffers the kernel holds"). */
  readonly #waitArg = new Uint8Array(WAIT_ARG_SIZE);
  readonly #waitView = new DataView(this.#waitArg.buffer);

  /** `deferred` false: a plain ring, never DEFER_TASKRUN (see PLAIN_SETUPS). */
  constructor(entries: number, cqEntries: number, deferred = true) {
    const params = new Uint8Array(SIZEOF.io_uring_params);
    const view = new DataView(params.buffer);
    const setups = deferred ? SETUPS : PLAIN_SETUPS;
    let fd = -1;
    let flags = 0;
    for (let attempt = 0; ; attempt++) {
      flags = setups[attempt];
      params.fill(0);
      view.setUint32(PARAMS.flags, flags, true);
      view.setUint32(PARAMS.cq_entries, cqEntries, true);
      const own = (flags & IORING_SETUP_NO_MMAP) !== 0;
      try {
        if (own) this.#giveMemory(view, entries, cqEntries);
        fd = sys.io_uring_setup(entries, params);
        // At once: the mapping and probing below, then the multiplexer's tracking, are many
        // calls away, and a worker stopped in between left the ring open (found by the
        // teardown test's reactor-remake shape).
        closeAtTeardown(fd);
        break;
      } catch (err) {
        this.#release();
        // Memory of ours refused (EINVAL: a kernel before 6.5, or one that wants it in one huge
        // page; ENOMEM: its pinned pages count against RLIMIT_MEMLOCK, the mapped rings do not):
        // the mapped rings. io_uring itself refused (EPERM, ENOSYS) would refuse them too.
        // EINVAL for the fast one: a flag this kernel does not know (before 6.1); try the plain
        // ring once.
        if (own && err instanceof SocketError && err.code !== 'EPERM' && err.code !== 'ENOSYS') continue;
        if (flags === BASE_SETUP || !(err instanceof SocketError) || err.code !== 'EINVAL') throw err;
      }
    }
    this.fd = fd;
    this.ownMemory = (flags & IORING_SETUP_NO_MMAP) !== 0;
    try {
      this.features = view.getUint32(PARAMS.features, true);
      // Timed waits need IORING_ENTER_EXT_ARG (Linux 5.11): without it, the kernel is too old.
      if ((this.features & IORING_FEAT_EXT_ARG) === 0) throw new SocketError('io_uring_setup', ERRNO.ENOSYS);
      this.deferTaskrun = (flags & IORING_SETUP_DEFER_TASKRUN) !== 0;
      this.sqEntries = view.getUint32(PARAMS.sq_entries, true);
      this.cqEntries = view.getUint32(PARAMS.cq_entries, true);
      const sq = (field: number) => view.getUint32(PARAMS.sq_off + field, true);
      const cq = (field: number) => view.getUint32(PARAMS.cq_off + field, true);
      const sqSize = sq(SQ_OFF.array) + this.sqEntries * 4;
      const cqSize = cq(CQ_OFF.cqes) + this.cqEntries * SIZEOF.io_uring_cqe;
      let sqMap: Mapping;
      let cqMap: Mapping;
      let sqesMap: Mapping;
      if (this.ownMemory) {
        // Ours: the SQEs first, then both rings in one block (as the kernel lays them out).
        [sqesMap, sqMap] = this.#maps;
        cqMap = sqMap;
        if (Math.max(sqSize, cqSize) > sqMap.length || this.sqEntries * SIZEOF.io_uring_sqe > sqesMap.length) {
          throw new SocketError('io_uring_setup', ERRNO.EOVERFLOW); // never: the block is sized for what was asked
        }
      } else {
        const single = (this.features & IORING_FEAT_SINGLE_MMAP) !== 0;
        sqMap = this.#map(single ? Math.max(sqSize, cqSize) : sqSize, IORING_OFF_SQ_RING);
        cqMap = single ? sqMap : this.#map(cqSize, IORING_OFF_CQ_RING);
        sqesMap = this.#map(this.sqEntries * SIZEOF.io_uring_sqe, IORING_OFF_SQES);
      }
      this.#sq = new Uint32Array(sqMap.buffer);
      this.#sqHead = sq(SQ_OFF.head) >> 2;
      this.#sqTail = sq(SQ_OFF.tail) >> 2;
      this.#sqFlags = sq(SQ_OFF.flags) >> 2;
      this.#sqMask = this.#sq[sq(SQ_OFF.ring_mask) >> 2];
      // The SQ array maps ring positions to SQEs: identity, written once (entry i is SQE i).
      const array = sq(SQ_OFF.array) >> 2;
      for (let i = 0; i < this.sqEntries; i++) this.#sq[array + i] = i;
      this.#tail = Atomics.load(this.#sq, this.#sqTail);
      this.#sqe32 = new Uint32Array(sqesMap.buffer);
      this.#sqe8 = new Uint8Array(sqesMap.buffer);
      this.#sqe16 = new Uint16Array(sqesMap.buffer);
      this.#cq = new Uint32Array(cqMap.buffer);
      this.#cqI32 = new Int32Array(cqMap.buffer);
      this.#cqHead = cq(CQ_OFF.head) >> 2;
      this.#cqTail = cq(CQ_OFF.tail) >> 2;
      this.#cqMask = this.#cq[cq(CQ_OFF.ring_mask) >> 2];
      this.#cqes = cq(CQ_OFF.cqes) >> 2;
      this.#head = Atomics.load(this.#cq, this.#cqHead);
      const waitAt = Number(koffi.address(this.#waitArg));
      this.#waitView.setUint32(ARG.ts, waitAt + TIMESPEC_AT, true);
      this.#waitView.setUint32(ARG.ts + 4, Math.floor((waitAt + TIMESPEC_AT) / 2 ** 32), true);
    } catch (err) {
      this.#release();
      throw err;
    }
  }

  /**
   * A zeroed SQE to fill, as the index of its first 32-bit word in `sqe32`. When the SQ is full,
   * what is queued is submitted first.
   */
  entry(): number {
    // Acquire: the kernel has finished reading every entry below the head, so they may be reused.
    if (((this.#tail - Atomics.load(this.#sq, this.#sqHead)) >>> 0) >= this.sqEntries) this.enter(0, 0);
    const w = (this.#tail & this.#sqMask) * SQE_WORDS;
    this.#tail = (this.#tail + 1) >>> 0;
    // Sixteen stores, not fill(0, w, w + 16): V8 runs a typed array's fill in C++, four times
    // as long for one entry. (An SQE is 64 bytes: SETUP_SQE128 is never asked for.)
    const s = this.#sqe32;
    s[w] = 0; s[w + 1] = 0; s[w + 2] = 0; s[w + 3] = 0; s[w + 4] = 0; s[w + 5] = 0; s[w + 6] = 0; s[w + 7] = 0;
    s[w + 8] = 0; s[w + 9] = 0; s[w + 10] = 0; s[w + 11] = 0; s[w + 12] = 0; s[w + 13] = 0; s[w + 14] = 0; s[w + 15] = 0;
    return w;
  }

  /** Fills the common fields of the SQE at word `w`: opcode, fd, len, the op's flags word and user_data (two halves). */
  prepare(w: number, opcode: number, fd: number, len: number, opFlags: number, dataLow: number, dataHigh: number): void {
    const s = this.#sqe32;
    this.#sqe8[(w << 2) + SQE.opcode] = opcode;
    s[w + (SQE.fd >> 2)] = fd;
    s[w + (SQE.len >> 2)] = len;
    s[w + (SQE.poll32_events >> 2)] = opFlags;
    s[w + (SQE.user_data >> 2)] = dataLow;
    s[w + (SQE.user_data >> 2) + 1] = dataHigh;
  }

  /** Sets the SQE's `addr` field from two 32-bit halves (a user_data to find, for removals). */
  setAddress(w: number, low: number, high: number): void {
    this.#sqe32[w + (SQE.addr >> 2)] = low;
    this.#sqe32[w + (SQE.addr >> 2) + 1] = high;
  }

  /** Sets the SQE's `ioprio` field (a receive's IORING_RECV_* flags) and `buf_group` (its buffer group). */
  setReceive(w: number, ioprio: number, bufferGroup: number): void {
    this.#sqe16[(w << 1) + (SQE.ioprio >> 1)] = ioprio;
    this.#sqe16[(w << 1) + (SQE.buf_group >> 1)] = bufferGroup;
  }

  /** Sets the SQE's `ioprio` field alone (an accept's IORING_ACCEPT_* flags). */
  setIoprio(w: number, ioprio: number): void {
    this.#sqe16[(w << 1) + (SQE.ioprio >> 1)] = ioprio;
  }

  /** Sets the SQE's IOSQE_* flags byte. */
  setEntryFlags(w: number, flags: number): void {
    this.#sqe8[(w << 2) + SQE.flags] = flags;
  }

  /** Entries written but not yet consumed by the kernel. */
  pending(): number {
    return (this.#tail - Atomics.load(this.#sq, this.#sqHead)) >>> 0;
  }

  /** Completions posted and not yet consumed. */
  ready(): number {
    return (Atomics.load(this.#cq, this.#cqTail) - this.#head) >>> 0;
  }

  /** IORING_SQ_TASKRUN: the kernel has task work for us to run (DEFER_TASKRUN rings, with TASKRUN_FLAG). */
  taskRunPending(): boolean {
    return (Atomics.load(this.#sq, this.#sqFlags) & IORING_SQ_TASKRUN) !== 0;
  }

  /**
   * IORING_SQ_CQ_OVERFLOW: completions wait in the kernel's overflow list (the CQ was full); an
   * enter with GETEVENTS moves them in. Meanwhile the ring fd stays readable.
   */
  cqOverflowPending(): boolean {
    return (Atomics.load(this.#sq, this.#sqFlags) & IORING_SQ_CQ_OVERFLOW) !== 0;
  }

  /**
   * io_uring_enter submitting every queued entry: the raw result (count, or WOULD_BLOCK,
   * RING_BUSY, TIMED_OUT). With IORING_ENTER_GETEVENTS it also runs the deferred task work
   * (which posts completions) and waits for `minComplete` of them (0: not at all).
   */
  enter(minComplete: number, flags: number): number {
    this.#publish();
    return sys.io_uring_enter(this.fd, this.pending(), minComplete, flags, null, 0);
  }

  /**
   * Submits and waits up to `timeoutMs` (> 0) for one completion; a signal neither cuts the
   * wait short nor stretches it (the time that remains is written again after EINTR).
   */
  enterTimed(timeoutMs: number): number {
    const deadline = performance.now() + timeoutMs;
    let remaining = timeoutMs;
    for (;;) {
      this.#setTimeout(remaining);
      this.#publish();
      const r = sys.io_uring_enter(
        this.fd, this.pending(), 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, this.#waitArg, SIZEOF.io_uring_getevents_arg,
      );
      if (r !== INTERRUPTED) return r;
      remaining = Math.max(0, deadline - performance.now());
    }
  }

  /** io_uring_register(opcode, arg, nrArgs). */
  register(opcode: number, arg: Uint8Array | null, nrArgs: number): number {
    return sys.io_uring_register(this.fd, opcode, arg, nrArgs);
  }

  /** The CQE at position `n` past our head (n < ready()): its word index in `cq`. */
  completion(n: number): number {
    return this.#cqes + (((this.#head + n) & this.#cqMask) * CQE_WORDS);
  }

  /** user_data low word, high word, res and flags of the CQE at word index `w`. */
  dataLow(w: number): number {
    return this.#cq[w + (CQE.user_data >> 2)];
  }
  dataHigh(w: number): number {
    return this.#cq[w + (CQE.user_data >> 2) + 1];
  }
  result(w: number): number {
    return this.#cqI32[w + (CQE.res >> 2)];
  }
  flags(w: number): number {
    return this.#cq[w + (CQE.flags >> 2)];
  }

  /** Marks `n` completions consumed. Release: we are done reading them; the kernel may reuse their entries. */
  consume(n: number): void {
    if (n === 0) return;
    this.#head = (this.#head + n) >>> 0;
    Atomics.store(this.#cq, this.#cqHead, this.#head);
  }

  /** Unmaps the rings and closes the ring fd. Never throws. */
  close(): void {
    this.#release();
  }

  /** Release: every SQE body written above becomes visible with the tail. */
  #publish(): void {
    Atomics.store(this.#sq, this.#sqTail, this.#tail);
  }

  #setTimeout(ms: number): void {
    const v = this.#waitView;
    const whole = Math.floor(ms / 1000);
    v.setUint32(TIMESPEC_AT, whole, true);
    v.setUint32(TIMESPEC_AT + 4, 0, true);
    v.setUint32(TIMESPEC_AT + 8, Math.round((ms - whole * 1000) * 1e6), true);
    v.setUint32(TIMESPEC_AT + 12, 0, true);
  }

  /**
   * Anonymous memory for IORING_SETUP_NO_MMAP, its addresses written into `params`: the SQEs, and
   * one block for both rings, sized as the kernel lays them out (its header, the CQEs, the SQ
   * array), with room to spare.
   */
  #giveMemory(params: DataView, entries: number, cqEntries: number): void {
    const anonymous = (length: number): Mapping => {
      const mapping = sys.mmap(pageAligned(length), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
      this.#maps.push(mapping);
      return mapping;
    };
    const address = (mapping: Mapping) => Number(koffi.address(new Uint8Array(mapping.buffer)));
    const sqes = anonymous(entries * SIZEOF.io_uring_sqe);
    const rings = anonymous(PAGE + cqEntries * SIZEOF.io_uring_cqe + entries * 4);
    const put = (at: number, value: number) => {
      params.setUint32(at, value % 2 ** 32, true);
      params.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
    };
    put(PARAMS.sq_off + RING_USER_ADDR_AT, address(sqes));
    put(PARAMS.cq_off + RING_USER_ADDR_AT, address(rings));
  }

  #map(length: number, offset: number): Mapping {
    const mapping = sys.mmap(length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, this.fd, offset);
    this.#maps.push(mapping);
    return mapping;
  }

  #release(): void {
    // Drop every view first: touching unmapped memory would crash the process, and an empty
    // array answers undefined instead.
    this.#sq = this.#cq = new Uint32Array(0);
    this.#cqI32 = new Int32Array(0);
    this.#sqe32 = new Uint32Array(0);
    this.#sqe8 = new Uint8Array(0);
    this.#sqe16 = new Uint16Array(0);
    for (const mapping of this.#maps) {
      try {
        sys.munmap(mapping);
      } catch {
        // munmap fails only for a range that is not mapped: nothing left to release.
      }
    }
    this.#maps = [];
    if (this.fd >= 0) {
      keepAtTeardown(this.fd);
      try {
        closeFd(this.fd);
      } catch {
        // Linux releases the fd whatever close reports.
      }
      (this as { fd: number }).fd = -1;
    }
  }
}
