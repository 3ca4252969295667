/**
 * Example servers as child processes: start one, wait for its `listening on HOST:PORT` line,
 * and wait for it to exit after a signal. The contract is shared by every example server
 * (echo, chat, http-hello), so their tests share this.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hangGuardMs } from './platform.ts';

/** The repository root: examples are run from there. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  host: string;
  port: number;
  /** `http://HOST:PORT` (IPv6 in brackets). */
  base: string;
  /** Resolves when the process has exited and its stdout and stderr are closed. */
  exited: Promise<ExitStatus>;
  stderr(): string;
  /** Everything printed on stdout so far, the `listening on` line included. */
  stdout(): string;
}

/** Spawns `node --import tsx SCRIPT ARGS...` and waits for its `listening on` line; killed in t.after. */
export async function startServer(t: TestContext, script: string, args: string[]): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  // 'close' (exit + stdio closed), so that stderr() is complete once this resolves.
  const exited = new Promise<ExitStatus>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  let out = '';
  const firstLine = await new Promise<string>((resolve, reject) => {
    // Under qemu a worker that loads tsx took longer than 15 s to listen (stop 29's CI): 5x there.
    const limitMs = hangGuardMs(15_000);
    const timer = setTimeout(() => reject(new Error(`no 'listening on' line within ${limitMs / 1000} s; stderr: ${stderr}`)), limitMs);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const end = out.indexOf('\n');
      if (end >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, end));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening; stderr: ${stderr}`));
    });
  });
  const match = /^listening on (?:\[([0-9a-f:.]+)\]|(\d+\.\d+\.\d+\.\d+)):(\d+)$/.exec(firstLine);
  assert.ok(match, `first stdout line: ${JSON.stringify(firstLine)}`);
  const host = match[1] ?? match[2];
  const port = Number(match[3]);
  assert.ok(port > 0 && port < 65536);
  const base = `http://${match[1] === undefined ? host : `[${host}]`}:${port}`;
  return { child, pid: child.pid!, host, port, base, exited, stderr: () => stderr, stdout: () => out };
}

/** The exit status, or a rejection naming the server's stderr when it is still running after `ms`. */
export async function exitWithin(server: ServerProcess, ms: number): Promise<ExitStatus> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`server still running ${ms} ms after the signal; stderr: ${server.stderr()}`)), ms);
  });
  try {
    return await Promise.race([server.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a finished example printed, and how it ended. */
export interface ExampleRun extends ExitStatus {
  stdout: string;
  stderr: string;
}

/** Runs `node --import tsx SCRIPT ARGS...` to its exit (stdin closed); killed in t.after if still running. */
export function runExample(t: TestContext, script: string, args: string[]): Promise<ExampleRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}
