/**
 * errno names: one table, the one Node uses (issue 11, finding 11), so that `err.code` reads as
 * Node's would and every list of codes the library compares with can match.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { getSystemErrorName } from 'node:util';
import { ERRNO, errnoCodes, errnoName } from '../ffi/errno.ts';
import { ROOT } from './helpers/server-process.ts';

test('errnoName names every errno as Node does (util.getSystemErrorName, os.constants.errno)', () => {
  const osErrno = constants.errno as Record<string, number>;
  for (const [name, value] of Object.entries(osErrno)) assert.equal(ERRNO[name], value, `ERRNO.${name}`);
  const namesOf = new Map<number, string[]>();
  for (const [name, value] of Object.entries(osErrno)) namesOf.set(value, [...(namesOf.get(value) ?? []), name]);
  for (const value of new Set(Object.values(ERRNO))) {
    const node = getSystemErrorName(-value);
    if (!node.startsWith('Unknown system error')) assert.equal(errnoName(value), node, `errno ${value}`);
    const os = namesOf.get(value);
    if (os?.length === 1) assert.equal(errnoName(value), os[0], `errno ${value}`);
    assert.equal(ERRNO[errnoName(value)], value, `errnoName(${value}) is a name of ${value}`);
  }
  assert.equal(errnoName(95), 'ENOTSUP');
  assert.equal(errnoName(11), 'EAGAIN');
  assert.equal(errnoName(35), 'EDEADLK');
  assert.equal(errnoName(100_000), 'E100000');
});

test('errnoCodes resolves aliases to the codes errors carry, and refuses unknown names', () => {
  assert.deepEqual(errnoCodes(['EOPNOTSUPP', 'EWOULDBLOCK', 'EDEADLOCK', 'ECONNRESET']), new Set(['ENOTSUP', 'EAGAIN', 'EDEADLK', 'ECONNRESET']));
  assert.throws(() => errnoCodes(['ENOSUCHERROR']), { name: 'RangeError', message: /ENOSUCHERROR/ });
});

/** Every .ts file under `dir`. */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return sources(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

test("no errno name in lib/ is one that err.code never carries (accept's EOPNOTSUPP was one)", () => {
  // A quoted 'EXXX' in the library is compared with err.code somewhere: an alias (EOPNOTSUPP,
  // EWOULDBLOCK) there would never match, so it must go through errnoCodes or not be there.
  const unreachable: string[] = [];
  for (const file of sources(join(ROOT, 'lib'))) {
    const text = readFileSync(file, 'utf8');
    for (const [, name] of text.matchAll(/'(E[A-Z0-9]+)'/g)) {
      if (ERRNO[name] !== undefined && errnoName(ERRNO[name]) !== name && !isResolved(text, name)) unreachable.push(`${file}: ${name}`);
    }
  }
  assert.deepEqual(unreachable, []);
});

/** Whether `name` appears in `text` only inside an errnoCodes([...]) list. */
function isResolved(text: string, name: string): boolean {
  const inLists = [...text.matchAll(/errnoCodes\(\[([^\]]*)\]\)/g)].map((m) => m[1]).join(' ');
  const everywhere = text.split(`'${name}'`).length - 1;
  const listed = inLists.split(`'${name}'`).length - 1;
  return everywhere === listed;
}
