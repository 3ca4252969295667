/**
 * Property-based tests (fast-check): random sequences of sends, receives, queue caps, flushes,
 * shutdowns, closes and destroys on connected pairs, checked against the model in
 * fixtures/rel-model.ts (every accepted byte arrives once and in order, or its loss is one TCP
 * itself allows; 'not-sent' takes nothing; a closed peer gets the accepted bytes then EOF).
 *
 * On failure fast-check prints the seed and the shrunk counterexample: keep that case in
 * test/regressions.test.ts, named after what it found. Replay one seed with
 * `FC_SEED=<seed> node --import tsx --test test/properties.test.ts`.
 */
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { runCase, type Case, type Op, type Side } from './fixtures/rel-model.ts';
import { trackFds } from './helpers/fd.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

const KiB = 1024;
const side = fc.constantFrom<Side>(0, 1);
/** Mostly small sizes (cheap cases), sometimes up to 256 KiB. */
const sendSize = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 2 * KiB }) },
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 32 * KiB }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 256 * KiB }) },
);
const bufferSize = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 512 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 64 * KiB }) },
);
const queueLimit = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 4 * KiB }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 256 * KiB }) },
);

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ t: fc.constant('send' as const), side, size: sendSize }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('burst' as const),
      side,
      size: fc.integer({ min: 1, max: 16 * KiB }),
      count: fc.integer({ min: 1, max: 64 }),
    }),
  },
  { weight: 6, arbitrary: fc.record({ t: fc.constant('recv' as const), side, buf: bufferSize, reads: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('wait' as const), ms: fc.constantFrom<0 | 1>(0, 1) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('flush' as const), side }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('limit' as const), side, n: queueLimit }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('shut' as const), side }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('close' as const), side }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('destroy' as const), side }) },
);

const caseArb: fc.Arbitrary<Case> = fc.record({
  limits: fc.tuple(queueLimit, queueLimit),
  smallKernelBuffers: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  ops: fc.array(op, { maxLength: 24 }),
});

const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const numRuns = Number(process.env.FC_RUNS ?? 1000);

describe('properties of a connected pair', () => {
  it(`every accepted byte arrives once and in order, or the loss is one TCP allows (${numRuns} random cases)`, (t) => {
    const started = performance.now();
    const stats: Record<string, number> = {};
    fc.assert(
      fc.property(caseArb, (spec) => {
        runCase(spec, stats);
      }),
      { numRuns, ...(seed === undefined ? {} : { seed }), endOnFailure: false },
    );
    t.diagnostic(`${numRuns} cases in ${Math.round(performance.now() - started)} ms; seen: ${JSON.stringify(stats)}`);
  });
});
