/**
 * The fd-passing examples' command-line contracts, with each other and with another correct
 * peer: Python's socket.send_fds / recv_fds.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';

const dir = mkdtempSync(join(tmpdir(), 'm-socket-fd-examples-'));
const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

// python3 comes with the machine image (see the README); a missing one fails these tests loudly.

function start(command: string, args: string[]): { child: ChildProcess; stdout: Promise<string>; stderr: Promise<string>; exit: Promise<number | null> } {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const collect = (stream: NodeJS.ReadableStream) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    return once(stream, 'end').then(() => Buffer.concat(chunks).toString());
  };
  const stdout = collect(child.stdout!);
  const stderr = collect(child.stderr!);
  const exit = once(child, 'close').then(([code]) => {
    children.delete(child);
    return code as number | null;
  });
  return { child, stdout, stderr, exit };
}

/** Starts the receiver example and waits for its `listening on` line. */
async function receiver(path: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/fd-receiver.ts', '--path', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const lines = createInterface({ input: child.stdout! });
  const [first] = (await Promise.race([
    once(lines, 'line'),
    new Promise((_, reject) => setTimeout(() => reject(new Error('no listening line within 15 s')), 15_000)),
  ])) as [string];
  const rest: string[] = [];
  lines.on('line', (line) => rest.push(line));
  const stderrChunks: Buffer[] = [];
  child.stderr!.on('data', (c: Buffer) => stderrChunks.push(c));
  const exit = once(child, 'close').then(([code]) => {
    children.delete(child);
    return { code: code as number | null, stdout: rest.join('\n'), stderr: Buffer.concat(stderrChunks).toString() };
  });
  return { first, exit };
}

function textFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const PY_SEND = `
import os, socket, sys
path, file = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path.replace('@', '\\0', 1) if path.startswith('@') else path)
fd = os.open(file, os.O_RDONLY)
socket.send_fds(s, [b'P'], [fd])
os.close(fd); s.close()
`;
const PY_RECEIVE = `
import os, socket, sys
path = sys.argv[1]
l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
l.bind(path); l.listen(1)
print('ready', flush=True)
c, _ = l.accept()
msg, fds, flags, addr = socket.recv_fds(c, 16, 4)
data = b''
while True:
    chunk = os.read(fds[0], 65536)
    if not chunk: break
    data += chunk
sys.stdout.write(repr((msg, len(fds))) + '\\n' + data.decode())
`;

describe('fd-passing examples', () => {
  it('fd-sender passes a file to fd-receiver, which prints its contents', async () => {
    const path = join(dir, 'pair.sock');
    const file = textFile('hello.txt', 'hello through a passed fd\n'.repeat(1000));
    const recv = await receiver(path);
    assert.equal(recv.first, `listening on ${path}`);
    const send = start(process.execPath, ['--import', 'tsx', 'examples/fd-sender.ts', '--path', path, '--file', file]);
    assert.equal(await send.exit, 0, await send.stderr);
    const result = await recv.exit;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout + '\n', 'hello through a passed fd\n'.repeat(1000));
    assert.match(result.stderr, /1 byte\(s\) alongside/);
    assert.equal(existsSync(path), false, 'the receiver removed its socket file');
  });

  it('fd-receiver works with another peer (Python send_fds), on an abstract name', async () => {
    const name = `@m-socket-fd-test-${process.pid}`;
    const file = textFile('py.txt', 'from python');
    const recv = await receiver(name);
    assert.equal(recv.first, `listening on ${name}`);
    const send = start('python3', ['-c', PY_SEND, name, file]);
    assert.equal(await send.exit, 0, await send.stderr);
    const result = await recv.exit;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'from python');
  });

  it('fd-sender works with another peer (Python recv_fds)', async () => {
    const path = join(dir, 'py.sock');
    const file = textFile('to-python.txt', 'to python');
    const py = start('python3', ['-u', '-c', PY_RECEIVE, path]);
    const ready = createInterface({ input: py.child.stdout! });
    await once(ready, 'line');
    ready.close();
    const send = start(process.execPath, ['--import', 'tsx', 'examples/fd-sender.ts', '--path', path, '--file', file]);
    assert.equal(await send.exit, 0, await send.stderr);
    assert.equal(await py.exit, 0, await py.stderr);
    assert.equal(await py.stdout, "ready\n(b'F', 1)\nto python");
  });

  it('fd-sender to a missing path prints one line naming it and exits 1', async () => {
    const missing = join(dir, 'nobody-here.sock');
    const send = start(process.execPath, ['--import', 'tsx', 'examples/fd-sender.ts', '--path', missing, '--file', '/dev/null']);
    assert.equal(await send.exit, 1);
    const stderr = (await send.stderr).trim().split('\n');
    assert.equal(stderr.length, 1, stderr.join('\n'));
    assert.match(stderr[0], /ENOENT/);
    assert.ok(stderr[0].includes(missing));
  });
});
