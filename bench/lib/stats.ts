/** Small statistics helpers: every figure in bench/ is a median of several runs with its spread. */

export interface Summary {
  /** Median of the runs. */
  median: number;
  /** Smallest and largest run. */
  min: number;
  max: number;
  /** (max - min) / median, as a fraction: the spread printed as ±x%. */
  spread: number;
  /** Every run, in order. */
  runs: number[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function summarize(values: readonly number[]): Summary {
  const finite = values.filter((v) => Number.isFinite(v));
  const m = median(finite);
  const min = finite.length ? Math.min(...finite) : NaN;
  const max = finite.length ? Math.max(...finite) : NaN;
  return { median: m, min, max, spread: m !== 0 && finite.length > 1 ? (max - min) / Math.abs(m) : 0, runs: [...values] };
}

/** A ratio of two medians, NaN when either side is missing. */
export function ratio(a: Summary | number | undefined, b: Summary | number | undefined): number {
  const x = typeof a === 'number' ? a : a?.median;
  const y = typeof b === 'number' ? b : b?.median;
  if (x === undefined || y === undefined || !Number.isFinite(x) || !Number.isFinite(y) || y === 0) return NaN;
  return x / y;
}
