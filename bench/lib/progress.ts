/**
 * Progress lines for long bench runs, on stderr (stdout carries the tables): one line per
 * measured step, numbered against the whole run's plan, with the time since the start, so that a
 * five-minute run shows where it is and how far it has to go.
 *
 *   [3/41 00:07] throughput ping-pong 1 conn against m-socket, run 1/3
 */
export class Progress {
  #done = 0;
  #total: number;
  readonly #started: number;
  readonly #write: (line: string) => void;
  readonly #now: () => number;

  /**
   * @param total the number of steps planned for the whole run (each section's plan, summed).
   * @param write where the lines go (stderr by default; a test collects them).
   * @param now the clock in ms (a test passes a fake one).
   */
  constructor(total: number, write: (line: string) => void = (l) => process.stderr.write(l + '\n'), now: () => number = () => performance.now()) {
    this.#total = total;
    this.#write = write;
    this.#now = now;
    this.#started = now();
  }

  /** Announces the next step. A step beyond the plan grows the total rather than print 13/12. */
  step(label: string): void {
    this.#done++;
    if (this.#done > this.#total) this.#total = this.#done;
    this.#write(`[${this.#done}/${this.#total} ${clock(this.#now() - this.#started)}] ${label}`);
  }

  /** A step that was planned and will not run (a server that is not available): the total shrinks. */
  passOver(count = 1): void {
    this.#total = Math.max(this.#done, this.#total - count);
  }

  get done(): number {
    return this.#done;
  }

  get total(): number {
    return this.#total;
  }
}

/** mm:ss since the start. */
export function clock(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}
