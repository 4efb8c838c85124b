// Small statistics helpers: percentiles of latency samples, medians and spread across runs.

/** q-quantile (0..1) of numbers, nearest-rank on a sorted copy. */
export function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function sortNumbers(values) {
  return Float64Array.from(values).sort();
}

/** Median with the spread (min, max) of the values that are numbers; null when there are none. */
export function summary(values) {
  const xs = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mid = xs.length >> 1;
  const median = xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
  return { median, min: xs[0], max: xs[xs.length - 1], n: xs.length };
}

export const nsToMs = (ns) => (ns === null ? null : ns / 1e6);
