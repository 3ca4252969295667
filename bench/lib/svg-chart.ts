/**
 * A small hand-written SVG chart for the bench results: horizontal bars with min-max whiskers,
 * one group of bars per row, one bar per series. Ratios are drawn on a log scale from a reference
 * line at 1 (so 0.5x and 2x are the same length either side of it); absolute figures on a linear
 * scale from 0. No dependency: the output is a string of SVG that a browser or GitHub shows as is.
 */

/** A median with the smallest and largest run; min = max = median for a single run. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface ChartRow {
  label: string;
  /** One value per series, in the order of `ChartSpec.series`; null where there is none. */
  values: (Spread | null)[];
}

export interface ChartSpec {
  title: string;
  /** A line under the title: what is compared, and which way is better. */
  subtitle?: string;
  series: string[];
  rows: ChartRow[];
  /** 'log' for ratios (reference line at 1 by default), 'linear' for absolute figures (from 0). */
  scale: 'log' | 'linear';
  /** Where the bars start: 1 for ratios, 0 for linear figures unless given. */
  reference?: number;
  /** The x axis caption. */
  axisLabel: string;
  /** Value text next to each bar; `1.23x` for log scales, three significant digits otherwise. */
  format?: (value: number) => string;
  /** Footnote lines (source, command, date). */
  notes?: string[];
}

export const COLORS = ['#2f6fb0', '#d0573a', '#3d9a55', '#8a5cb8', '#b08a2f'];

/** Geometry, exported for the tests. */
export const LAYOUT = {
  width: 920,
  labelWidth: 250,
  right: 170,
  top: 62,
  barHeight: 13,
  barGap: 4,
  rowGap: 14,
  axisHeight: 42,
  legendHeight: 24,
  noteHeight: 15,
};

/** Maps a value to an x coordinate within the plot area. */
export interface Scale {
  x(value: number): number;
  ticks: number[];
  domain: [number, number];
}

function finiteValues(spec: ChartSpec): number[] {
  const out: number[] = [];
  for (const row of spec.rows) for (const v of row.values) if (v) for (const n of [v.min, v.median, v.max]) if (Number.isFinite(n)) out.push(n);
  return out;
}

/** The scale of a chart: the data's range padded, with round ticks (powers of 2 on a log scale). */
export function scaleFor(spec: ChartSpec): Scale {
  const left = LAYOUT.labelWidth;
  const right = LAYOUT.width - LAYOUT.right;
  const values = finiteValues(spec);
  if (spec.scale === 'log') {
    const ref = spec.reference ?? 1;
    const positive = values.filter((v) => v > 0);
    let lo = Math.min(ref, ...positive);
    let hi = Math.max(ref, ...positive);
    // At least 0.5x..2x, so that a chart of ratios near 1 does not magnify noise into a cliff.
    lo = Math.min(lo / 1.15, ref / 2);
    hi = Math.max(hi * 1.15, ref * 2);
    const l0 = Math.log(lo);
    const l1 = Math.log(hi);
    const x = (v: number) => left + ((Math.log(Math.max(v, lo)) - l0) / (l1 - l0)) * (right - left);
    const ticks: number[] = [];
    for (let e = Math.ceil(Math.log2(lo)); e <= Math.floor(Math.log2(hi)); e++) ticks.push(2 ** e);
    return { x, ticks, domain: [lo, hi] };
  }
  const ref = spec.reference ?? 0;
  const lo = Math.min(ref, ...values);
  const hiRaw = Math.max(ref, ...values);
  const step = niceStep((hiRaw - lo) / 5 || 1);
  const hi = Math.ceil((hiRaw * 1.05) / step) * step || step;
  const x = (v: number) => left + ((v - lo) / (hi - lo)) * (right - left);
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step / 1e6; t += step) ticks.push(Number(t.toPrecision(12)));
  return { x, ticks, domain: [lo, hi] };
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/** Splits text into lines of at most `width` characters, at spaces (a longer word stays whole). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const fmt3 = (v: number) => (Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('en-US') : Number(v.toPrecision(3)).toString());
const ratioText = (v: number) => `${v.toFixed(2)}x`;

const r1 = (v: number) => Math.round(v * 10) / 10;

/** Renders the chart as a standalone SVG document. */
export function renderChart(spec: ChartSpec): string {
  const L = LAYOUT;
  const scale = scaleFor(spec);
  const format = spec.format ?? (spec.scale === 'log' ? ratioText : fmt3);
  const ref = spec.reference ?? (spec.scale === 'log' ? 1 : 0);
  const n = spec.series.length;
  const rowHeight = n * L.barHeight + (n - 1) * L.barGap + L.rowGap;
  const plotTop = L.top + L.legendHeight;
  const plotHeight = spec.rows.length * rowHeight;
  // ~6.2 px per character of 11 px text: long notes wrap instead of running off the edge.
  const notes = (spec.notes ?? []).flatMap((note) => wrap(note, Math.floor((L.width - 24) / 6.2)));
  const height = plotTop + plotHeight + L.axisHeight + notes.length * L.noteHeight + 10;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${L.width}" height="${height}" viewBox="0 0 ${L.width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<title>${escapeXml(spec.title)}</title>`);
  out.push(`<rect width="${L.width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="12" y="24" font-size="16" font-weight="bold">${escapeXml(spec.title)}</text>`);
  if (spec.subtitle) out.push(`<text x="12" y="44" fill="#444">${escapeXml(spec.subtitle)}</text>`);
  // Legend
  let lx = L.labelWidth;
  spec.series.forEach((name, i) => {
    out.push(`<rect x="${lx}" y="${L.top}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`);
    out.push(`<text x="${lx + 17}" y="${L.top + 10}" class="legend">${escapeXml(name)}</text>`);
    lx += 17 + name.length * 7 + 24;
  });
  // Grid and ticks
  const axisY = plotTop + plotHeight;
  for (const t of scale.ticks) {
    const x = r1(scale.x(t));
    out.push(`<line x1="${x}" y1="${plotTop - 4}" x2="${x}" y2="${axisY}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${x}" y="${axisY + 15}" text-anchor="middle" fill="#444" class="tick">${escapeXml(spec.scale === 'log' ? `${fmt3(t)}x` : fmt3(t))}</text>`);
  }
  out.push(`<text x="${r1((L.labelWidth + L.width - L.right) / 2)}" y="${axisY + 33}" text-anchor="middle" fill="#222">${escapeXml(spec.axisLabel)}</text>`);
  // Rows
  spec.rows.forEach((row, ri) => {
    const y0 = plotTop + ri * rowHeight + L.rowGap / 2;
    if (ri % 2 === 1) out.push(`<rect x="0" y="${y0 - L.rowGap / 2}" width="${L.width}" height="${rowHeight}" fill="#000" fill-opacity="0.03"/>`);
    const mid = y0 + (rowHeight - L.rowGap) / 2;
    out.push(`<text x="${L.labelWidth - 10}" y="${r1(mid + 4)}" text-anchor="end" class="row-label">${escapeXml(row.label)}</text>`);
    row.values.forEach((v, si) => {
      const y = y0 + si * (L.barHeight + L.barGap);
      const color = COLORS[si % COLORS.length];
      if (v === null || !Number.isFinite(v.median)) {
        out.push(`<text x="${r1(scale.x(ref) + 4)}" y="${y + L.barHeight - 2}" fill="#888" font-size="11">n/a</text>`);
        return;
      }
      const xm = scale.x(v.median);
      const xr = scale.x(ref);
      const x = Math.min(xm, xr);
      const w = Math.max(Math.abs(xm - xr), 1);
      const data = `data-row="${ri}" data-series="${si}" data-median="${v.median}"`;
      out.push(`<rect class="bar" ${data} x="${r1(x)}" y="${y}" width="${r1(w)}" height="${L.barHeight}" fill="${color}" fill-opacity="0.85"/>`);
      const spread = v.max > v.min;
      if (spread) {
        const cy = y + L.barHeight / 2;
        const a = r1(scale.x(v.min));
        const b = r1(scale.x(v.max));
        out.push(`<g class="whisker" ${data} data-min="${v.min}" data-max="${v.max}" stroke="#222" stroke-width="1.2">`);
        out.push(`<line x1="${a}" y1="${cy}" x2="${b}" y2="${cy}"/><line x1="${a}" y1="${y + 2}" x2="${a}" y2="${y + L.barHeight - 2}"/><line x1="${b}" y1="${y + 2}" x2="${b}" y2="${y + L.barHeight - 2}"/>`);
        out.push(`</g>`);
      }
      const tx = Math.max(xm, spread ? scale.x(v.max) : xm, xr) + 5;
      const label = format(v.median) + (spread ? ` (${format(v.min)}–${format(v.max)})` : '');
      out.push(`<text x="${r1(tx)}" y="${y + L.barHeight - 2}" font-size="11" class="value">${escapeXml(label)}</text>`);
    });
  });
  // The reference line goes over the bars.
  const xr = r1(scale.x(ref));
  out.push(`<line class="reference" x1="${xr}" y1="${plotTop - 4}" x2="${xr}" y2="${axisY}" stroke="#222" stroke-width="1.5"/>`);
  out.push(`<line x1="${L.labelWidth}" y1="${axisY}" x2="${L.width - L.right}" y2="${axisY}" stroke="#888"/>`);
  notes.forEach((note, i) => {
    out.push(`<text x="12" y="${axisY + L.axisHeight + 8 + i * L.noteHeight}" font-size="11" fill="#555">${escapeXml(note)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
