/**
 * Headless Chromium for tests, driven over the DevTools protocol on a pipe
 * (--remote-debugging-pipe: JSON messages separated by NUL, commands on the child's fd 3, replies
 * and events on its fd 4). No WebSocket and no npm browser package: Debian's `chromium` and
 * node:child_process are enough. One browser per `openBrowser`, a fresh profile in a temp dir,
 * killed and removed by `close()`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

/** The browser the tests use: $CHROMIUM, else Debian's. */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** `chromium --version`, or null when it cannot be run (then a test fails with how to fix it). */
export function chromiumVersion(): string | null {
  const r = spawnSync(CHROMIUM, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  if (r.error || r.status !== 0) return null;
  return r.stdout.trim();
}

/** Flags that work in this container and keep the browser off the network. */
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  // Lets a file:// page fetch the other files of a file:// site (a whole API reference checked
  // from one page).
  '--allow-file-access-from-files',
  '--remote-debugging-pipe',
];

export interface PageResult<T> {
  value: T;
  /** Uncaught exceptions the page's scripts threw while loading and evaluating. */
  exceptions: string[];
}

export interface Browser {
  /**
   * Navigates the one tab to `url`, waits for its load event, then evaluates `expression` (a
   * promise is awaited) and returns its value, which must be JSON-serialisable.
   */
  evaluate<T>(url: string, expression: string): Promise<PageResult<T>>;
  /** Ends the browser and every process it started (its process group), removes its profile. */
  close(): Promise<void>;
  /** The browser's pid, which is also its process group's id. */
  readonly pid: number;
}

interface Message {
  id?: number;
  method?: string;
  sessionId?: string;
  result?: Record<string, unknown>;
  error?: { message: string };
  params?: Record<string, unknown>;
}

/** Starts Chromium; every call is bounded by `timeoutMs`. */
export async function openBrowser(timeoutMs = 30_000): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'm-socket-chromium-'));
  const child: ChildProcess = spawn(CHROMIUM, [...FLAGS, `--user-data-dir=${profile}`, 'about:blank'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
    // Its own process group, so that close() can end the renderer and zygote processes too.
    detached: true,
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 8192) stderr += d.toString();
  });
  const toBrowser = child.stdio[3] as Writable;
  const fromBrowser = child.stdio[4] as Readable;
  let nextId = 1;
  const pending = new Map<number, { resolve: (m: Message) => void; reject: (e: Error) => void }>();
  const listeners = new Set<(m: Message) => void>();
  let exited: Error | null = null;
  let buffered = '';
  fromBrowser.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let nul: number;
    while ((nul = buffered.indexOf('\0')) >= 0) {
      const msg = JSON.parse(buffered.slice(0, nul)) as Message;
      buffered = buffered.slice(nul + 1);
      if (msg.id !== undefined && pending.has(msg.id)) {
        const p = pending.get(msg.id)!;
        pending.delete(msg.id);
        if (msg.error) p.reject(new Error(`DevTools: ${msg.error.message}`));
        else p.resolve(msg);
      } else for (const l of listeners) l(msg);
    }
  });
  // A write to a browser that already died must reject the command, not crash the test.
  toBrowser.on('error', () => {});
  child.on('exit', (code, signal) => {
    exited = new Error(`chromium exited (${code ?? signal}) ${stderr.slice(-2000)}`);
    for (const p of pending.values()) p.reject(exited);
    pending.clear();
  });
  child.on('error', (err) => {
    exited = err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  });

  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Message> => {
    if (exited) return Promise.reject(exited);
    const id = nextId++;
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`DevTools: ${method} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (m) => (clearTimeout(timer), resolve(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      toBrowser.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + '\0');
    });
  };
  const close = async () => {
    if (!exited) {
      const gone = new Promise((r) => child.once('exit', r));
      send('Browser.close').catch(() => {});
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    }
    // Node does not close the pipe it writes to when the child exits: that is ours to close.
    toBrowser.destroy();
    fromBrowser.destroy();
    child.stderr!.destroy();
    // Whatever the browser started and left behind in its group (normally nothing).
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // ESRCH: the group is gone
    }
    rmSync(profile, { recursive: true, force: true });
  };

  try {
    const { result } = await send('Target.createTarget', { url: 'about:blank' });
    const attached = await send('Target.attachToTarget', { targetId: result!.targetId, flatten: true });
    const sessionId = attached.result!.sessionId as string;
    await send('Page.enable', {}, sessionId);
    await send('Runtime.enable', {}, sessionId);
    return {
      async evaluate<T>(url: string, expression: string): Promise<PageResult<T>> {
        const exceptions: string[] = [];
        let loaded!: () => void;
        const load = new Promise<void>((r) => (loaded = r));
        const listener = (m: Message) => {
          if (m.sessionId !== sessionId) return;
          if (m.method === 'Page.loadEventFired') loaded();
          if (m.method === 'Runtime.exceptionThrown') {
            const d = m.params!.exceptionDetails as { text: string; exception?: { description?: string } };
            exceptions.push(d.exception?.description ?? d.text);
          }
        };
        listeners.add(listener);
        try {
          const nav = await send('Page.navigate', { url }, sessionId);
          if (nav.result!.errorText) throw new Error(`cannot open ${url}: ${nav.result!.errorText}`);
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            load,
            new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${url}: no load event in ${timeoutMs} ms`)), timeoutMs))),
          ]).finally(() => clearTimeout(timer));
          const r = await send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true }, sessionId);
          const details = r.result!.exceptionDetails as { text: string } | undefined;
          if (details) throw new Error(`evaluating on ${url}: ${details.text}`);
          return { value: (r.result!.result as { value: T }).value, exceptions };
        } finally {
          listeners.delete(listener);
        }
      },
      close,
      pid: child.pid!,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
