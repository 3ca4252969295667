/**
 * `npm run bench -- --profile`: runs the m-socket echo server under `node --cpu-prof` while the
 * C load generator drives 64 B ping-pong over 50 connections and then a bulk echo, stops it
 * gracefully (SIGTERM, so the profile is written) and prints the top self-time functions.
 * Profiles land in bench/.build/prof (gitignored).
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BUILD_DIR, BENCH_DIR, type Built } from './lib/build.ts';
import { topSelfTime } from './lib/cpuprofile.ts';
import { parseKV, run } from './lib/proc.ts';
import { CLIENT_CORE, startServer } from './lib/servers.ts';
import { num, render } from './lib/table.ts';

export async function runProfile(options: { built: Built; log: (s: string) => void; quick: boolean }): Promise<void> {
  const { built, log } = options;
  if (built.tools === null) {
    log(`profile skipped: ${built.reason}`);
    return;
  }
  const tools = built.tools;
  const root = join(BENCH_DIR, '..');
  for (const [label, kind, shapes] of [
    ['reactor', 'm-socket', ['pp50', 'bulk']],
    ['busy', 'm-socket busy', ['pp1']],
  ] as const) {
    const dir = join(BUILD_DIR, 'prof', label);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const server = await startServer(kind, tools.echo_server, { lifetimeS: 300, nodeFlags: ['--cpu-prof', '--cpu-prof-dir', dir] });
    if (server === null) return;
    try {
      for (const shape of shapes) {
        const args =
          shape === 'bulk'
            ? [tools.bulk, [String(server.port), options.quick ? '256' : '1024', '65536', '120']]
            : [tools.pingpong, [String(server.port), shape === 'pp50' ? '50' : '1', options.quick ? '2' : '5', '0.5', '64']];
        const out = await run(args[0] as string, args[1] as string[], { core: CLIENT_CORE, timeoutMs: 150_000 });
        const kv = parseKV(out);
        log(`profile ${label} ${shape}: ${kv.rps !== undefined ? `${num(kv.rps)} req/s` : `${num(kv.MBps)} MB/s`}`);
      }
      const exited = new Promise<void>((resolve) => server.child.process.once('exit', () => resolve()));
      server.child.process.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    } finally {
      await server.child.kill();
    }
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (file === undefined) {
      log(`no profile written in ${dir}`);
      continue;
    }
    const { total, rows } = topSelfTime(join(dir, file), root, 20);
    console.log(
      render({
        title: `Top self time, m-socket ${label} server (${shapes.join(' + ')}; ${num(total)} ms sampled; ${join(dir, file)})`,
        header: ['function', 'where', 'self ms', 'self %'],
        rows: rows.map((r) => [r.name, r.where, num(r.ms), num(r.pct)]),
      }),
    );
  }
}
