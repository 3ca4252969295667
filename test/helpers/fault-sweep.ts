/**
 * The fault sweep's engine. A scenario drives the library through the public API the way an
 * application would; the engine runs it once to learn every call site of the swept libc
 * functions it reaches (a site: the function and the library frames that called it), then once
 * per (site x fault), with that fault injected into the first call made from that site, and
 * checks the invariants of every run:
 *
 * - no exception escapes `wait()`; a public call throws only a `SocketError` with a code, and
 *   only where the API documents it (`Scenario` runs every public call through `ctx.call`);
 * - no fd is leaked (the open set is the same before and after);
 * - no byte lost silently: what arrives is a prefix of what was accepted, in order, and the rest
 *   is missing only if a failure was reported (an event's `error`, `socket.error`, a throw);
 * - the objects stay usable or are cleanly closed: the run ends (completed, or failed with a
 *   report) within its time bound, never stalls; a transient fault (EINTR, EAGAIN, a short count,
 *   or an error thrown by a call the application can simply retry) must not even cost the run.
 */
import { ERRNO } from '../../ffi/errno.ts';
import { callSite, injectFaults, type Fault, type FaultCall } from '../../ffi/faults.ts';
import { SocketError } from '../../lib/index.ts';
import { ResolveError } from '../../lib/core/resolve.ts';
import { fdTarget, openFds } from './fd.ts';

/** Raised for a broken invariant: the sweep reports it with the case that caused it. */
export class Violation extends Error {}

/** What a public call may throw: a SocketError (or ResolveError) with a code, nothing else. */
export interface Context {
  /**
   * Runs a public call that the API documents as able to throw a SocketError. Returns its value,
   * or `FAILED` after recording the error as reported. Anything else thrown is a violation.
   */
  call<T>(what: string, fn: () => T): T | typeof FAILED;
  /** Records a failure the library reported (an event's error, socket.error). */
  reported(err: unknown, where: string): void;
  /** The failures reported so far in this run. */
  readonly failures: readonly string[];
  /** Throws a Violation (with the case's name) unless `ok`. */
  check(ok: boolean, message: string): void;
}

export const FAILED: unique symbol = Symbol('failed');

/** One scenario: `run` drives it to its end and says whether it completed its work. */
export interface Scenario {
  name: string;
  /** Returns true when all the work completed (every byte, every fd delivered), false when it ended early on a reported failure. */
  run(ctx: Context): boolean | Promise<boolean>;
}

/** A fault to try at a site, and whether the run must still complete. */
export interface FaultChoice {
  label: string;
  fault: Fault;
  /**
   * The application carries on as if nothing happened (EINTR, EAGAIN, a short count, a retryable
   * throw), so the run must complete; a function decides per site.
   */
  transient: boolean | ((site: string) => boolean);
}

/** Which faults to try at a call of `name` (given its arguments), or none to skip the site. */
export type FaultTable = (name: string, args: readonly unknown[]) => readonly FaultChoice[];

export interface SweepResult {
  /** Distinct sites reached by the clean run, per scenario. */
  sites: string[];
  /** (site x fault) cases run. */
  cases: number;
  /** Cases whose site was not reached again in the faulty run (timing-dependent paths). */
  unreached: string[];
  /** Every broken invariant, with its case. */
  violations: string[];
}

const errno = (name: string): Fault => ({ errno: ERRNO[name] });
/** A fault that the run must survive unharmed. */
export const transient = (label: string, fault: Fault): FaultChoice => ({ label, fault, transient: true });
/** A fault that may end the run, if it is reported. */
export const fatal = (name: string): FaultChoice => ({ label: name, fault: errno(name), transient: false });
/**
 * A fault thrown by a call the application retries (accept EMFILE, recv ENOMEM, a send the kernel
 * refused while nothing was queued): the run must complete. Met by a flush (inside wait(), close,
 * or a multiplexer's close; known by its frame, SocketSender.flushQueue or DatagramSocket.#flushQueue),
 * it ends the stream instead (reported, with the unsent bytes).
 */
export const retryable = (name: string): FaultChoice => ({ label: name, fault: errno(name), transient: (site) => !site.includes('flushQueue') });
export const EINTR = transient('EINTR', errno('EINTR'));
/**
 * Would-block costs nothing, except in the one last flush that Multiplexer.close() gives a socket
 * closing gracefully: what the kernel cannot take then is lost by design, and reported so.
 */
export const EAGAIN: FaultChoice = { label: 'EAGAIN', fault: errno('EAGAIN'), transient: (site) => !site.includes('_orphaned') };
export const SHORT = transient('short count', { short: 1 });

/** The key a site is known by: the function (with its first distinguishing argument) and the library frames. */
function siteKey(call: FaultCall, detail: (name: string, args: readonly unknown[]) => string): string {
  const extra = detail(call.name, call.args);
  return `${call.name}${extra === '' ? '' : ` ${extra}`} @ ${callSite()}`;
}

function context(label: string): Context & { failuresList: string[] } {
  const failuresList: string[] = [];
  const ctx = {
    failuresList,
    get failures() {
      return failuresList;
    },
    call<T>(what: string, fn: () => T): T | typeof FAILED {
      try {
        return fn();
      } catch (err) {
        if (err instanceof Violation) throw err;
        if (!(err instanceof SocketError) || typeof err.code !== 'string' || typeof err.syscall !== 'string') {
          throw new Violation(`${label}: ${what} threw something other than a SocketError with a code: ${String(err)}`);
        }
        failuresList.push(`${what}: ${err.code}`);
        return FAILED;
      }
    },
    reported(err: unknown, where: string) {
      if (!((err instanceof SocketError || err instanceof ResolveError) && typeof err.code === 'string')) {
        throw new Violation(`${label}: ${where} reported an error without a code: ${String(err)}`);
      }
      failuresList.push(`${where}: ${err.code}`);
    },
    check(ok: boolean, message: string) {
      if (!ok) throw new Violation(`${label}: ${message}`);
    },
  };
  return ctx;
}

/** Runs one scenario with `filter` injected; returns the violations (empty when all held) and whether it completed. */
async function runOnce(
  scenario: Scenario,
  label: string,
  filter: ((call: FaultCall) => Fault | null) | null,
  names: readonly string[],
  mustComplete: boolean,
): Promise<{ violations: string[]; injected: number }> {
  const before = new Set(openFds());
  const ctx = context(label);
  const violations: string[] = [];
  const injection = filter === null ? null : injectFaults(filter, names);
  let completed = false;
  try {
    completed = await scenario.run(ctx);
  } catch (err) {
    violations.push(err instanceof Violation ? err.message : `${label}: escaped: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  } finally {
    injection?.restore();
  }
  if (violations.length === 0) {
    if (!completed && ctx.failures.length === 0) violations.push(`${label}: ended early with no failure reported (lost silently)`);
    if (mustComplete && !completed) violations.push(`${label}: a transient fault cost the run (reported: ${ctx.failures.join(', ')})`);
  }
  const leaked = openFds().filter((fd) => !before.has(fd));
  if (leaked.length > 0) violations.push(`${label}: leaked fds ${leaked.map((fd) => `${fd} -> ${fdTarget(fd)}`).join(', ')}`);
  return { violations, injected: injection?.injected.length ?? 0 };
}

/**
 * Sweeps `scenario`: a clean run (which must complete) to find its sites, then one run per
 * (site x fault of `table`).
 */
export async function sweep(
  scenario: Scenario,
  names: readonly string[],
  table: FaultTable,
  detail: (name: string, args: readonly unknown[]) => string = () => '',
): Promise<SweepResult> {
  const sites = new Map<string, FaultChoice[]>();
  const clean = await runOnce(
    scenario,
    `${scenario.name} (no fault)`,
    (call) => {
      const choices = table(call.name, call.args);
      if (choices.length > 0) {
        const key = siteKey(call, detail);
        if (!sites.has(key)) sites.set(key, [...choices]);
      }
      return null;
    },
    names,
    true,
  );
  const result: SweepResult = { sites: [...sites.keys()], cases: 0, unreached: [], violations: [...clean.violations] };
  for (const [site, choices] of sites) {
    for (const choice of choices) {
      const label = `${scenario.name}: ${choice.label} at ${site}`;
      let done = false;
      const filter = (call: FaultCall): Fault | null => {
        if (done || table(call.name, call.args).length === 0 || siteKey(call, detail) !== site) return null;
        done = true;
        return choice.fault;
      };
      const mustComplete = typeof choice.transient === 'function' ? choice.transient(site) : choice.transient;
      const run = await runOnce(scenario, label, filter, names, mustComplete);
      result.cases++;
      if (run.injected === 0) result.unreached.push(label);
      result.violations.push(...run.violations);
    }
  }
  return result;
}
