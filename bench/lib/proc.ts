/**
 * Child processes for the benchmarks: spawn pinned to a core (taskset) with a raised fd limit
 * (prlimit), read their CPU time and RSS from /proc, and make sure every one of them is killed
 * when the bench ends, fails, or is interrupted.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

const live = new Set<ChildProcess>();
let hooked = false;

function killAll(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

/** Installs the exit / Ctrl-C / crash hooks that kill every child (once). */
export function installCleanup(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      killAll();
      process.stderr.write(`\nbench: ${signal}, children killed\n`);
      process.exit(130);
    });
  }
}

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** What this machine offers the benchmarks. */
export const machine = (() => {
  const tck = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim());
  const hard = Number(spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout?.trim());
  return {
    clockTicks: Number.isFinite(tck) && tck > 0 ? tck : 100,
    cores: cpus().length,
    taskset: which('taskset') && cpus().length >= 2,
    prlimit: which('prlimit'),
    cc: which('cc'),
    /** Hard RLIMIT_NOFILE ('unlimited' reads as Infinity). */
    nofileHard: Number.isFinite(hard) ? hard : Infinity,
  };
})();

/** utime + stime of a process, in seconds (from /proc/PID/stat). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ", field 3 (state) is index 0: utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) / machine.clockTicks;
}

/** Resident set size of a process, in KiB (VmRSS of /proc/PID/status). */
export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

export interface SpawnOptions {
  /** Pin to this core with taskset (when available). */
  core?: number;
  /** Raise RLIMIT_NOFILE (soft and hard) to this for the child, within the hard limit. */
  nofile?: number;
  /** Extra environment. */
  env?: Record<string, string>;
}

function argv(cmd: string, args: string[], options: SpawnOptions): [string, string[]] {
  let full = [cmd, ...args];
  if (options.nofile !== undefined) {
    const n = Math.min(options.nofile, machine.nofileHard);
    full = machine.prlimit ? ['prlimit', `--nofile=${n}:${n}`, '--', ...full] : ['sh', '-c', `ulimit -n ${n} && exec "$@"`, 'sh', ...full];
  }
  if (options.core !== undefined && machine.taskset) full = ['taskset', '-c', String(options.core), ...full];
  return [full[0], full.slice(1)];
}

/** A long-lived child (a server): its stdout lines can be awaited. */
export class Child {
  readonly process: ChildProcess;
  readonly pid: number;
  #lines: string[] = [];
  #waiters: (() => void)[] = [];
  #stderr = '';
  #exited = false;

  constructor(cmd: string, args: string[], options: SpawnOptions = {}) {
    installCleanup();
    const [file, rest] = argv(cmd, args, options);
    this.process = spawn(file, rest, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    if (this.process.pid === undefined) throw new Error(`cannot spawn ${cmd}`);
    this.pid = this.process.pid;
    live.add(this.process);
    let partial = '';
    this.process.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      partial += chunk;
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      this.#lines.push(...parts);
      this.#wake();
    });
    this.process.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-4000);
    });
    this.process.on('exit', () => {
      this.#exited = true;
      live.delete(this.process);
      this.#wake();
    });
  }

  get stderr(): string {
    return this.#stderr;
  }

  get exited(): boolean {
    return this.#exited;
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Waits for a stdout line matching `re` (bounded by `timeoutMs`). */
  async line(re: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = 0; i < this.#lines.length; i++) {
        const m = re.exec(this.#lines[i]);
        if (m) {
          this.#lines.splice(0, i + 1);
          return m;
        }
      }
      if (this.#exited) throw new Error(`child ${this.pid} exited before printing ${re}: ${this.#stderr.trim()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`child ${this.pid}: no line ${re} within ${timeoutMs} ms: ${this.#stderr.trim()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  write(text: string): void {
    if (!this.#exited) this.process.stdin!.write(text);
  }

  cpuSeconds(): number {
    return cpuSeconds(this.pid);
  }

  rssKiB(): number {
    return rssKiB(this.pid);
  }

  /** Kills the child and waits (briefly) for it to go. */
  async kill(): Promise<void> {
    if (this.#exited) return;
    const gone = new Promise<void>((resolve) => this.process.once('exit', () => resolve()));
    this.process.kill('SIGKILL');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 2000))]);
    live.delete(this.process);
  }
}

/** Runs a child to completion (bounded by `timeoutMs`) and returns its stdout. */
export async function run(cmd: string, args: string[], options: SpawnOptions & { timeoutMs: number }): Promise<string> {
  const child = new Child(cmd, args, options);
  let out = '';
  child.process.stdout!.on('data', (c: string) => (out += c));
  const code = await new Promise<number | null>((resolve) => {
    const t = setTimeout(() => {
      child.process.kill('SIGKILL');
    }, options.timeoutMs);
    child.process.on('exit', (c) => {
      clearTimeout(t);
      resolve(c);
    });
  });
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${code}): ${child.stderr.trim()}`);
  return out;
}

/** Parses `key=value key=value` output into numbers (non-numbers are dropped). */
export function parseKV(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/(\w+)=(-?[\d.]+)/g)) out[m[1]] = Number(m[2]);
  return out;
}
