/**
 * The layout is a contract: the folders of lib/ are layers and families, and imports point one
 * way. This reads every source file's imports (as text: no module is loaded) and checks:
 * - no import circle among lib/ files at run time (type-only imports are erased, and where the
 *   API itself is mutual, Listener.accept() giving a Socket and a Socket receiving a Listener,
 *   their types must name each other);
 * - each layer imports only what lies below it: ffi/ nothing of lib/; lib/core/ only ffi/ and
 *   core/; a family (lib/stream/, lib/datagram/) core/ and its own folder; lib/loop/ core/ (at
 *   run time: its public types may name the families it watches); lib/face/ and lib/index.ts
 *   anything;
 * - lib/index.ts only re-exports;
 * - the README's "Project layout" section names every folder and file of lib/;
 * - the one late binding that keeps Socket and Listener out of a circle (listener.ts hands
 *   Socket its maker for received listening sockets when it loads) cannot be replaced later.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Socket } from '../lib/index.ts';

const root = path.resolve(import.meta.dirname, '..');

interface Edge {
  to: string;
  typeOnly: boolean;
}

function sources(dir: string): string[] {
  return fs
    .readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
    .sort();
}

/** Every relative import and re-export of `file`, with whether it is erased (type-only). */
function importsOf(file: string): Edge[] {
  const text = fs.readFileSync(path.join(root, file), 'utf8');
  const edges: Edge[] = [];
  const statement = /^(import|export)\s+(type\s+)?([^;]*?)\s*from\s+'(\.[^']+)'/gms;
  for (const m of text.matchAll(statement)) {
    const [, , typeKeyword, clause, spec] = m;
    // `import { type A, type B } from` is erased too; a clause with one value name is not.
    const names = clause.replace(/[{}]/g, '').split(',').map((n) => n.trim()).filter(Boolean);
    const typeOnly = typeKeyword !== undefined || (names.length > 0 && names.every((n) => n.startsWith('type ')));
    edges.push({ to: path.normalize(path.join(path.dirname(file), spec)), typeOnly });
  }
  for (const m of text.matchAll(/^import\s+'(\.[^']+)'/gm)) edges.push({ to: path.normalize(path.join(path.dirname(file), m[1])), typeOnly: false });
  return edges;
}

const libFiles = sources('lib');
const graph = new Map(libFiles.map((f) => [f, importsOf(f)]));

/** The part of lib/ a file belongs to: 'core', 'stream', 'loop', 'face', 'index'... */
function areaOf(file: string): string {
  if (file.startsWith('ffi/')) return 'ffi';
  const parts = file.split('/');
  return parts.length === 2 ? 'index' : parts[1];
}

const FAMILIES = new Set(['stream', 'datagram']);

/** What `from` may import at run time, and with type-only imports. */
function allowed(from: string, to: string, typeOnly: boolean): boolean {
  if (to === 'ffi' || to === from) return true;
  switch (from) {
    case 'core':
      return false;
    case 'loop':
      return to === 'core' || (typeOnly && FAMILIES.has(to));
    case 'face':
    case 'index':
      return true;
    default:
      if (FAMILIES.has(from)) return to === 'core';
      return false;
  }
}

describe('layout', () => {
  it('lib/ has the folders the README describes, and no file at its top but index.ts', () => {
    const folders = [...new Set(libFiles.map((f) => f.split('/')[1]).filter((p) => !p.endsWith('.ts')))].sort();
    assert.deepEqual(folders, ['core', 'datagram', 'face', 'loop', 'stream']);
    assert.deepEqual(libFiles.filter((f) => f.split('/').length === 2), ['lib/index.ts']);
  });

  it('every import resolves to a file that exists', () => {
    for (const [file, edges] of graph) for (const e of edges) assert.ok(fs.existsSync(path.join(root, e.to)), `${file} imports ${e.to}, which does not exist`);
  });

  it('no import circle among lib/ files at run time', () => {
    const state = new Map<string, 'visiting' | 'done'>();
    const stack: string[] = [];
    const visit = (file: string): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'visiting') assert.fail(`import circle: ${[...stack.slice(stack.indexOf(file)), file].join(' -> ')}`);
      state.set(file, 'visiting');
      stack.push(file);
      for (const e of graph.get(file) ?? []) if (!e.typeOnly && graph.has(e.to)) visit(e.to);
      stack.pop();
      state.set(file, 'done');
    };
    for (const file of libFiles) visit(file);
  });

  it('each layer imports only what lies below it', () => {
    const wrong: string[] = [];
    for (const [file, edges] of graph) {
      for (const e of edges) {
        if (!allowed(areaOf(file), areaOf(e.to), e.typeOnly)) wrong.push(`${file} imports ${e.to}${e.typeOnly ? ' (types)' : ''}`);
      }
    }
    for (const file of sources('ffi')) for (const e of importsOf(file)) if (!e.to.startsWith('ffi/')) wrong.push(`${file} imports ${e.to}`);
    assert.deepEqual(wrong, []);
  });

  it('lib/index.ts only re-exports', () => {
    const code = fs
      .readFileSync(path.join(root, 'lib/index.ts'), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '');
    const statements = code.split(';').map((s) => s.trim()).filter(Boolean);
    for (const s of statements) assert.match(s, /^export\s+(type\s+)?\{[^}]*\}\s+from\s+'[^']+'$/s, `not a re-export: ${s.slice(0, 80)}`);
  });

  it('the Listener maker for received fds is set once, by the library, and cannot be swapped', () => {
    assert.throws(() => Socket._adoptListenersWith(() => assert.fail('swapped')), { code: 'ERR_ILLEGAL_CONSTRUCTOR' });
  });

  it("the README's layout section names every folder and file of lib/", () => {
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Project layout'), readme.indexOf('\n## ', readme.indexOf('## Project layout') + 1));
    const missing: string[] = [];
    for (const file of libFiles) {
      const parts = file.split('/');
      for (let i = 1; i < parts.length - 1; i++) if (!section.includes(`${parts[i]}/`)) missing.push(`${parts.slice(0, i + 1).join('/')}/`);
      if (!section.includes(path.basename(file, '.ts'))) missing.push(file);
    }
    assert.deepEqual([...new Set(missing)], []);
  });
});
