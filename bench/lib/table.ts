/** Plain-text and Markdown tables for the console and RESULTS.md. */
import type { Summary } from './stats.ts';

export type Cell = string | number | Summary | null | undefined;

/** Formats a number with a sensible number of significant digits. */
export function num(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return '-';
  const abs = Math.abs(value);
  if (abs >= 10 ** digits) return Math.round(value).toLocaleString('en-US');
  if (abs === 0) return '0';
  return Number(value.toPrecision(digits)).toString();
}

/** "median ±spread%" */
export function withSpread(s: Summary | undefined, digits = 3): string {
  if (s === undefined || !Number.isFinite(s.median)) return '-';
  const spread = s.runs.length > 1 ? ` ±${Math.round((s.spread * 100) / 2)}%` : '';
  return num(s.median, digits) + spread;
}

export function ratioCell(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}x` : '-';
}

function cellText(c: Cell): string {
  if (c === null || c === undefined) return '-';
  if (typeof c === 'string') return c;
  if (typeof c === 'number') return num(c);
  return withSpread(c);
}

export interface Table {
  title: string;
  header: string[];
  rows: Cell[][];
  notes?: string[];
}

/** Renders a table as aligned text (console) or Markdown. */
export function render(table: Table, markdown = false): string {
  const rows = table.rows.map((r) => r.map(cellText));
  const widths = table.header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    markdown
      ? `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`
      : cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out: string[] = [];
  out.push(markdown ? `### ${table.title}` : `\n== ${table.title} ==`);
  if (markdown) out.push('');
  out.push(line(table.header));
  out.push(markdown ? `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|')}|` : widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) out.push(line(r));
  for (const n of table.notes ?? []) out.push(markdown ? `\n${n}` : `  ${n}`);
  return out.join('\n');
}
