// Reads GET /metrics (Prometheus text exposition) for the telemetry tests.
import { getJson } from '../helpers/http.js';
import type { Endpoint } from '../helpers/fleet.js';

export interface Scrape {
  contentType: string;
  text: string;
  /** The sample `name{labels}` (labels must match exactly, in any order); undefined when absent. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** Like value(), but an absent sample counts as 0 (a labelled counter appears on its first inc). */
  count(name: string, labels?: Record<string, string>): number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export async function scrape(replica: Endpoint): Promise<Scrape> {
  const answer = await getJson(`${replica.url}/metrics`);
  if (answer.status !== 200) throw new Error(`GET /metrics on ${replica.replicaId}: ${answer.status}`);
  const samples = answer.text.split('\n').flatMap((line) => {
    const match = SAMPLE.exec(line);
    if (match === null) return [];
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(LABEL)].map((m) => [m[1], m[2]]));
    return [{ name: match[1], labels, value: Number(match[3]) }];
  });
  const value = (name: string, labels: Record<string, string> = {}): number | undefined =>
    samples.find((s) => s.name === name && sameLabels(s.labels, labels))?.value;
  return { contentType: answer.headers['content-type'] ?? '', text: answer.text, value, count: (name, labels) => value(name, labels) ?? 0 };
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}
