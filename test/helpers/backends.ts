/**
 * The multiplexer configurations the backend suites run against (CPython's selector mixin, one
 * step further): every backend, and io_uring with `ringSend`, whose sends differ enough (every
 * send queued, sent by the ring at the end of the turn) to need the whole suite of its own.
 */
import { BACKEND_NAMES, type BackendName } from '../../lib/loop/backends/backend.ts';

export interface MuxConfig {
  /** What the suite is called after. */
  label: string;
  backend: BackendName;
  ringSend: boolean;
}

export const MUX_CONFIGS: readonly MuxConfig[] = [
  ...BACKEND_NAMES.map((backend) => ({ label: backend, backend, ringSend: false })),
  { label: 'io_uring, ringSend', backend: 'io_uring', ringSend: true },
];
