/**
 * The README's code is tested: the first code a user copies must work as written, under load.
 *
 * Every ```ts block of the README carries a marker on the line before it:
 * - `<!-- program: NAME ... -->`: a whole program. It is type-checked, and run by the test named
 *   NAME in PROGRAMS below, against real clients with a load that would expose loss. A program
 *   block without a test here fails, and so does a test whose block has gone.
 * - `<!-- fragment ... -->`: a piece of code. It is type-checked (with the library's exports, and
 *   a `reactor` and a `mux` it does not declare, in scope when it imports nothing itself).
 * A ts block with no marker fails: whoever adds one decides which it is.
 *
 * The REPL recipe (the sh block marked `<!-- repl -->`) is typed line by line into a real
 * `tsx` REPL in a pseudo-terminal, and each answer is compared with the one the README shows.
 *
 * Extracted code lives in `.tmp/` at the top of the repository (git-ignored), so that it resolves
 * `tsx` and the library as a user's file would. The only rewrites: `'m-socket'` becomes the
 * path of lib/index.ts, and a program's fixed port (7000, 7001) becomes 0, read back from its
 * `listening on` line.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join, relative } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { trackFds } from './helpers/fd.ts';
import { exitWithin, ROOT, startServer } from './helpers/server-process.ts';

let fds: ReturnType<typeof trackFds>;
before(() => {
  fds = trackFds();
});
after(() => fds.assertNoLeak());

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const LIB = join(ROOT, 'lib', 'index.ts');

/** One fenced code block of the README. */
interface Block {
  lang: string;
  code: string;
  /** Line of the opening fence (1-based). */
  line: number;
  /** 'program', 'fragment' or 'repl' from the marker before the block, or null. */
  kind: string | null;
  /** The program's name (`<!-- program: NAME -->`). */
  name: string;
}

function parseBlocks(text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]);
    if (open === null) continue;
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    let before = i - 1;
    while (before >= 0 && lines[before].trim() === '') before--;
    const marker = before >= 0 ? /^<!--\s*(program|fragment|repl)\b:?\s*([\w-]*)/.exec(lines[before]) : null;
    blocks.push({ lang: open[1], code: lines.slice(i + 1, end).join('\n') + '\n', line: i + 1, kind: marker?.[1] ?? null, name: marker?.[2] ?? '' });
    i = end;
  }
  return blocks;
}

const blocks = parseBlocks(README);
const tsBlocks = blocks.filter((b) => b.lang === 'ts' || b.lang === 'typescript');
const programs = new Map(tsBlocks.filter((b) => b.kind === 'program').map((b) => [b.name, b]));

/** Where this run writes the extracted code; removed at the end. */
let dir = '';
before(() => {
  mkdirSync(join(ROOT, '.tmp'), { recursive: true });
  dir = mkdtempSync(join(ROOT, '.tmp', 'readme-'));
});
after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

/** The block's code as a file in `dir`, importing the library from its source. */
function extract(block: Block, fileName: string, rewrite: (code: string) => string = (c) => c): string {
  const path = join(dir, fileName);
  const lib = relative(dir, LIB);
  writeFileSync(path, rewrite(block.code.replaceAll("'m-socket'", `'${lib}'`)));
  return path;
}

/** Replaces `from` with `to` exactly once (a rewrite that silently stopped matching would hide a change). */
function replaceOnce(code: string, from: string, to: string): string {
  const parts = code.split(from);
  assert.equal(parts.length, 2, `expected exactly one ${JSON.stringify(from)} in the program`);
  return parts.join(to);
}

/**
 * What a fragment may use without declaring it: the objects the README's prose speaks of ("the
 * reactor"), declared unless the fragment declares them itself.
 */
const CONTEXT: Record<string, string> = { reactor: 'Reactor', mux: 'Multiplexer' };

function contextFor(code: string): string {
  return Object.entries(CONTEXT)
    .filter(([name]) => !new RegExp(`\\b(?:const|let|var|function|class)\\s+${name}\\b`).test(code))
    .map(([name, type]) => `declare const ${name}: ${type};\n`)
    .join('');
}

/** `import { every value export } ...; import type { every type export } ...` for fragments that import nothing. */
async function prelude(): Promise<string> {
  const values = Object.keys(await import('../lib/index.ts'));
  const types = new Set<string>();
  const index = readFileSync(LIB, 'utf8');
  for (const match of index.matchAll(/export (type )?\{([^}]*)\}/g)) {
    for (const item of match[2].split(',').map((s) => s.trim()).filter(Boolean)) {
      if (match[1] !== undefined) types.add(item);
      else if (item.startsWith('type ')) types.add(item.slice(5).trim());
    }
  }
  const lib = relative(dir, LIB);
  return `import fs from 'node:fs';\nimport { ${values.join(', ')} } from '${lib}';\nimport type { ${[...types].join(', ')} } from '${lib}';\n`;
}

// ---- Programs: name -> a test that runs the extracted program against real clients ----------

/** Connects, writes all of `payload` (node:net buffers it) and half-closes *before* reading, then reads the echo to the end. */
async function echoBeforeReading(port: number, payload: Buffer): Promise<Buffer> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.pause(); // nothing is read until everything has been written
  try {
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    for (let at = 0; at < payload.length; at += 64 * 1024) socket.write(payload.subarray(at, at + 64 * 1024));
    socket.end();
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.resume();
    await new Promise<void>((resolve, reject) => socket.once('end', resolve).once('error', reject));
    return Buffer.concat(chunks);
  } finally {
    socket.destroy();
  }
}

/** Deterministic bytes that no echo could fake: a hash chain. */
function payloadOf(bytes: number, seed: string): Buffer {
  const out = Buffer.alloc(bytes);
  let block = createHash('sha256').update(seed).digest();
  for (let at = 0; at < bytes; at += block.length) {
    block.copy(out, at);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

function assertIntact(echo: Buffer, payload: Buffer): void {
  assert.equal(echo.length, payload.length, `echoed ${echo.length} of ${payload.length} bytes`);
  const first = echo.findIndex((b, i) => b !== payload[i]);
  assert.equal(first, -1, `the echo differs from byte ${first}`);
}

const PROGRAMS: Record<string, (t: TestContext, block: Block) => Promise<void>> = {
  /** The first server must echo 8 MB sent before reading, intact (the snippet that ignored 'not-sent' returned 5.5 MB). */
  'first-server': async (t, block) => {
    const file = extract(block, 'first-server.ts', (code) => replaceOnce(code, 'port: 7000', 'port: 0'));
    const server = await startServer(t, file, []);
    const payload = payloadOf(8 * 1024 * 1024, 'first-server');
    const [one, two] = await Promise.all([echoBeforeReading(server.port, payload), echoBeforeReading(server.port, payload.subarray(0, 1 << 20))]);
    assertIntact(one, payload);
    assertIntact(two, payload.subarray(0, 1 << 20));
    assert.equal(server.child.exitCode, null, `the server still runs; stderr: ${server.stderr()}`);
    server.child.kill('SIGTERM'); // it has no signal handling: the default action ends it
    assert.equal((await exitWithin(server, 5000)).signal, 'SIGTERM');
    assert.equal(server.stderr(), '');
  },
  /** The worker program starts its worker under tsx, echoes intact, and stops through its Waker. */
  'worker-loop': async (t, block) => {
    const file = extract(block, 'worker-loop.ts', (code) => replaceOnce(code, 'port: 7001', 'port: 0'));
    const server = await startServer(t, file, []);
    const payload = payloadOf(4 * 1024 * 1024, 'worker-loop');
    const echoes = await Promise.all([1, 2, 3].map(() => echoBeforeReading(server.port, payload)));
    for (const echo of echoes) assertIntact(echo, payload);
    server.child.kill('SIGTERM'); // the main thread wakes the worker out of wait(-1); both end
    assert.deepEqual(await exitWithin(server, 10_000), { code: 0, signal: null }, server.stderr());
    assert.equal(server.stderr(), '');
  },
};

// ---- The REPL: a real tsx REPL in a pseudo-terminal (python3's pty) -----------------------------

/** Types each line into `node_modules/.bin/tsx` (no arguments: its REPL) and returns what each printed. */
const REPL_DRIVER = String.raw`
import json, os, pty, select, sys, time
root, lines, argv = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.chdir(root)
    os.execv(argv[0], argv)
buf = b''
def read_until(start, timeout):
    global buf
    end = time.time() + timeout
    # An answer is complete when a new prompt follows a line break.
    while not (b'\n' in buf[start:] and buf[start:].rstrip().endswith(b'>')):
        left = end - time.time()
        if left <= 0:
            os.kill(pid, 9)
            raise SystemExit('timed out; the REPL printed: ' + repr(buf[-2000:]))
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b''
            if not chunk:
                raise SystemExit('the REPL ended; it printed: ' + repr(buf[-2000:]))
            buf += chunk
buf_start = 0
while not buf.rstrip().endswith(b'>'):
    ready, _, _ = select.select([fd], [], [], 30)
    if not ready:
        os.kill(pid, 9)
        raise SystemExit('no prompt; got: ' + repr(buf))
    buf += os.read(fd, 65536)
answers = []
for line in lines:
    start = len(buf)
    os.write(fd, line.encode() + b'\r')
    read_until(start, 30)
    answers.append(buf[start:].decode('utf8', 'replace'))
os.write(fd, b'.exit\r')
os.waitpid(pid, 0)
print(json.dumps(answers))
`;

/** The REPL block as (line typed, answer expected) pairs. */
function replSteps(block: Block): { input: string; expected: string[] }[] {
  const steps: { input: string; expected: string[] }[] = [];
  for (const line of block.code.split('\n')) {
    if (line.startsWith('> ')) steps.push({ input: line.slice(2), expected: [] });
    else if (line.trim() !== '' && steps.length > 0) steps.at(-1)!.expected.push(line);
  }
  return steps;
}

/** A line the README shows, as a pattern: numbers (a port) may differ. */
function answerPattern(line: string): RegExp {
  const escaped = line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\d+/g, '\\d+');
  return new RegExp(`^${escaped}$`);
}

describe('README', () => {
  it('marks every ts block as a program or a fragment', () => {
    const unmarked = tsBlocks.filter((b) => b.kind === null || b.kind === 'repl').map((b) => `README.md:${b.line}`);
    assert.deepEqual(unmarked, [], 'add <!-- program: NAME --> (and a test in PROGRAMS) or <!-- fragment --> before each');
    assert.ok(tsBlocks.length >= 5, `found ${tsBlocks.length} ts blocks`);
  });

  it('has a test for every program, and a program for every test', () => {
    assert.deepEqual([...programs.keys()].sort(), Object.keys(PROGRAMS).sort());
  });

  it('type-checks every ts block (programs and fragments)', async () => {
    const pre = await prelude();
    const files: string[] = [];
    tsBlocks.forEach((block, i) => {
      const name = `block-${String(i).padStart(2, '0')}-line-${block.line}.ts`;
      const importsItself = /^import\s/m.test(block.code);
      files.push(extract(block, name, (code) => (importsItself ? code : pre + contextFor(code) + code)));
    });
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      extends: relative(dir, join(ROOT, 'tsconfig.json')),
      compilerOptions: { noEmit: true, noUnusedLocals: false, rootDir: relative(dir, ROOT) },
      include: ['*.ts'],
    }));
    const run = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { encoding: 'utf8', timeout: 120_000 });
    // Name the README line of each error (the file names carry it).
    assert.equal(run.status, 0, `tsc on the README's code blocks:\n${run.stdout}${run.stderr}`);
    assert.equal(files.length, tsBlocks.length);
  });

  for (const [name, run] of Object.entries(PROGRAMS)) {
    it(`program ${name} runs as its test says`, { timeout: 120_000 }, async (t) => {
      const block = programs.get(name);
      assert.ok(block, `no <!-- program: ${name} --> block in the README`);
      await run(t, block);
    });
  }

  it('the REPL recipe works as typed, line by line, in a real tsx REPL', { timeout: 120_000 }, () => {
    const repl = blocks.filter((b) => b.kind === 'repl');
    assert.equal(repl.length, 1, 'one <!-- repl --> block');
    const steps = replSteps(repl[0]);
    assert.ok(steps.length >= 5, `${steps.length} lines to type`);
    assert.equal(repl[0].code.split('\n')[0], 'npx tsx');
    writeFileSync(join(dir, 'repl.py'), REPL_DRIVER);
    const run = spawnSync('python3', [join(dir, 'repl.py'), ROOT, JSON.stringify(steps.map((s) => s.input)), join(ROOT, 'node_modules', '.bin', 'tsx')], {
      encoding: 'utf8',
      timeout: 100_000,
      // A plain terminal: answers without colours or inline previews, so they compare as text.
      env: { ...process.env, TERM: 'dumb', NO_COLOR: '1' },
    });
    assert.equal(run.status, 0, `the REPL driver: ${run.stderr}`);
    const answers = JSON.parse(run.stdout) as string[];
    steps.forEach((step, i) => {
      // What the REPL printed after echoing the line, without the next prompt.
      const printed = answers[i].replace(/\r/g, '').split('\n').slice(1, -1).filter((l) => l.trim() !== '');
      assert.equal(printed.length, step.expected.length, `line ${JSON.stringify(step.input)} printed ${JSON.stringify(printed)}`);
      printed.forEach((line, j) => assert.match(line, answerPattern(step.expected[j]), `line ${JSON.stringify(step.input)}`));
    });
  });
});
