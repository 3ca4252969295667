/**
 * The API reference: `npm run docs` builds TypeDoc's HTML from the TSDoc into api-docs/
 * (git-ignored), and headless Chromium opens it: every name that lib/index.ts exports (read from
 * the module at run time, not a list kept here) has its own page, reached from the index, titled
 * with the name and showing the TSDoc summary of that export, and no page's scripts throw.
 *
 * Chromium is Debian's `chromium` (`.ci/run` installs it when missing); without it this test
 * fails with how to fix it, it is not skipped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromiumVersion, openBrowser, CHROMIUM } from './helpers/chromium.ts';
import { trackFds } from './helpers/fd.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const INDEX_TS = join(ROOT, 'lib', 'index.ts');
const OUT = join(ROOT, 'api-docs');

/**
 * Every name lib/index.ts exports, values and types. Values come from the loaded module; type-only
 * names do not exist at run time, so they are read from the module's source (it is re-exports
 * only), and the values found there must be exactly the module's own keys, which checks the
 * reading.
 */
async function exportedNames(): Promise<{ values: string[]; types: string[] }> {
  const runtime = Object.keys(await import(pathToFileURL(INDEX_TS).href)).sort();
  const source = readFileSync(INDEX_TS, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  assert.doesNotMatch(source, /export\s*\*/, 'lib/index.ts uses `export *`: list the names so they can be checked');
  const values = new Set<string>();
  const types = new Set<string>();
  for (const m of source.matchAll(/export\s+(type\s+)?\{([^}]*)\}/g)) {
    for (const raw of m[2].split(',')) {
      const item = raw.trim();
      if (item === '') continue;
      const isType = m[1] !== undefined || item.startsWith('type ');
      const name = item.replace(/^type\s+/, '').split(/\s+as\s+/).pop()!.trim();
      (isType ? types : values).add(name);
    }
  }
  for (const m of source.matchAll(/export\s+(?:declare\s+)?(interface|type|enum|class|const|function|let)\s+([A-Za-z_$][\w$]*)/g)) {
    (m[1] === 'interface' || m[1] === 'type' ? types : values).add(m[2]);
  }
  assert.deepEqual([...values].sort(), runtime, 'the value exports read from lib/index.ts are the module’s own');
  return { values: runtime, types: [...types].sort() };
}

/** The page title without its badges (`<code class="tsd-tag">Const</code>`), as page-side JS. */
const TITLE = (doc: string) =>
  `[...(${doc}.querySelector('.tsd-page-title h1')?.childNodes ?? [])].filter((n) => !n.classList?.contains('tsd-tag')).map((n) => n.textContent).join('')`;

interface Part {
  kind: string;
  text: string;
}
interface Reflection {
  name: string;
  comment?: { summary: Part[] };
  signatures?: { comment?: { summary: Part[] } }[];
}

/** Lower-case words, so that Markdown and HTML rendering (code spans, line breaks) compare equal. */
function words(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, ' ')
    .trim()
    .split(' ')
    .filter((w) => w !== '');
}

/** The TSDoc summary TypeDoc read for each top-level export (from the JSON output of the same run). */
function summaries(): Map<string, string> {
  const project = JSON.parse(readFileSync(join(OUT, 'api.json'), 'utf8')) as { children?: Reflection[] };
  const out = new Map<string, string>();
  for (const r of project.children ?? []) {
    const parts = r.comment?.summary ?? r.signatures?.find((s) => s.comment)?.comment?.summary ?? [];
    // Up to the first fenced code block: its language tag is not shown, and prose is what we look for.
    const fence = parts.findIndex((p) => p.kind === 'code' && p.text.startsWith('```'));
    const prose = fence < 0 ? parts : parts.slice(0, fence);
    out.set(r.name, prose.map((p) => (p.kind === 'code' ? p.text.replace(/`/g, '') : p.text)).join(''));
  }
  return out;
}

test('npm run docs builds an HTML page for every export of lib/index.ts, showing its TSDoc, in headless Chromium', async (t) => {
  const version = chromiumVersion();
  assert.ok(
    version !== null,
    `cannot run ${CHROMIUM} --version: the API reference is checked in headless Chromium. Install it (as root: apt-get update && apt-get install -y chromium; .ci/run does this), or point $CHROMIUM at a Chromium binary`,
  );
  t.diagnostic(version);

  const t0 = performance.now();
  // Not under c8's coverage: TypeDoc and the TypeScript compiler are not ours, and their
  // coverage files would only slow the report down.
  const env = { ...process.env };
  delete env.NODE_V8_COVERAGE;
  const build = spawnSync('npm', ['run', 'docs'], { cwd: ROOT, encoding: 'utf8', timeout: 180_000, env });
  assert.equal(build.status, 0, `npm run docs failed:\n${build.stdout}\n${build.stderr}`);
  const warnings = /Found (\d+) errors and (\d+) warnings/.exec(build.stdout + build.stderr);
  if (warnings) t.diagnostic(`typedoc: ${warnings[1]} errors, ${warnings[2]} warnings`);

  const { values, types } = await exportedNames();
  const names = [...values, ...types].sort();
  assert.ok(values.length > 10 && types.length > 10, `${values.length} values and ${types.length} types exported`);
  const docs = summaries();

  const t1 = performance.now();
  const fds = trackFds();
  const browser = await openBrowser();
  try {
    const index = await browser.evaluate<{ title: string; links: [string, string][] }>(
      pathToFileURL(join(OUT, 'index.html')).href,
      `({ title: document.title, links: [...document.querySelectorAll('.col-content a[href]')].map((a) => [a.textContent.trim(), a.href]) })`,
    );
    assert.deepEqual(index.exceptions, [], 'the index page’s scripts run without an exception');
    assert.equal(index.value.title, 'm-socket');
    const pages = new Map(index.value.links.filter(([, href]) => !href.includes('#')));
    // Every page, parsed by the browser from the index page (one navigation instead of sixty).
    const hrefs = [...new Set(names.map((n) => pages.get(n)).filter((h) => h !== undefined))];
    const parsed = await browser.evaluate<Record<string, { h1: string; text: string } | string>>(
      pathToFileURL(join(OUT, 'index.html')).href,
      `(async () => {
        const out = {};
        for (const href of ${JSON.stringify(hrefs)}) {
          try {
            const doc = new DOMParser().parseFromString(await (await fetch(href)).text(), 'text/html');
            out[href] = { h1: ${TITLE('doc')}, text: doc.querySelector('.col-content')?.textContent ?? '' };
          } catch (err) {
            out[href] = String(err);
          }
        }
        return out;
      })()`,
    );
    const problems: string[] = [];
    for (const name of names) {
      const href = pages.get(name);
      if (href === undefined) {
        problems.push(`${name}: no page linked from the index`);
        continue;
      }
      const summary = words(docs.get(name) ?? '');
      if (summary.length === 0) {
        problems.push(`${name}: no TSDoc summary`);
        continue;
      }
      const page = parsed.value[href];
      if (typeof page !== 'object') {
        problems.push(`${name}: cannot load ${href}: ${page}`);
        continue;
      }
      if (page.h1.trim().replace(/<[^>]*>$/, "").split(/\s+/).pop() !== name) problems.push(`${name}: page title is "${page.h1}"`);
      // The summary's first words, as the reader sees them (long summaries may hold Markdown lists).
      const head = summary.slice(0, 12).join(' ');
      if (!` ${words(page.text).join(' ')} `.includes(` ${head} `)) problems.push(`${name}: the page does not show its TSDoc ("${head} ...")`);
    }
    // And one page of each kind (class, function, interface, type alias, variable) opened for
    // real: its scripts run without an exception and the rendered text shows the summary.
    const kinds = new Map<string, string>();
    for (const name of names) {
      const href = pages.get(name);
      const kind = href?.split('/').at(-2);
      if (href !== undefined && kind !== undefined && !kinds.has(kind)) kinds.set(kind, name);
    }
    for (const name of kinds.values()) {
      const rendered = await browser.evaluate<{ h1: string; text: string }>(
        pages.get(name)!,
        `({ h1: ${TITLE('document')}, text: document.querySelector('.col-content')?.innerText ?? '' })`,
      );
      if (rendered.exceptions.length > 0) problems.push(`${name}: page script threw ${rendered.exceptions.join('; ')}`);
      if (!words(rendered.value.text).join(' ').includes(words(docs.get(name) ?? '').slice(0, 12).join(' '))) problems.push(`${name}: rendered page does not show its TSDoc`);
    }
    assert.ok(kinds.size >= 5, `pages of ${[...kinds.keys()].join(', ')}`);
    assert.deepEqual(problems, [], `${names.length} exports checked`);
    t.diagnostic(`${names.length} exports (${values.length} values, ${types.length} types), each with a page showing its TSDoc; rendered: ${[...kinds.values()].join(', ')}`);
    t.diagnostic(`npm run docs ${Math.round(t1 - t0)} ms, Chromium checks ${Math.round(performance.now() - t1)} ms`);
  } finally {
    await browser.close();
  }
  fds.assertNoLeak();
  // Every process of the browser's group has ended (renderers and zygotes included).
  assert.ok(await groupGone(browser.pid), `processes of chromium's group ${browser.pid} are still running`);
});

/** Whether no process is left in a process group, waiting up to 5 s for them to be reaped. */
async function groupGone(pgid: number): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return true; // ESRCH: none left
    }
    await sleep(100);
  }
  return false;
}
