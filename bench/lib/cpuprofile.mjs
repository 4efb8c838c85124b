// Reads V8 .cpuprofile files (node --cpu-prof) and ranks where the time went: self time per
// function, inclusive time per function, and self time per module (a src/ file or an npm package).
import { readFileSync } from 'node:fs';

function moduleOf(url) {
  if (!url) return '(native/V8)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 13).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return `src/${url.slice(dist + 6).replace(/\.js$/, '.ts')}`;
  if (url.startsWith('node:')) return url;
  const bench = url.indexOf('/bench/');
  if (bench >= 0) return url.slice(bench + 1);
  return url.replace(/^file:\/\//, '');
}

function keyOf(frame) {
  const name = frame.functionName || '(anonymous)';
  if (!frame.url) return name;
  return `${name} ${moduleOf(frame.url)}:${frame.lineNumber + 1}`;
}

// Samples under these frames are boot (module loading) or the heap snapshot itself, not the
// work being profiled; they are counted apart.
function excluded(node, byId, parent) {
  for (let id = node.id; id !== undefined; id = parent.get(id)) {
    const f = byId.get(id).callFrame;
    if (
      f.functionName === 'doWriteHeapSnapshot' ||
      f.url.startsWith('node:internal/modules/') ||
      f.url.startsWith('node:internal/process/pre_execution') ||
      f.url.startsWith('node:internal/main/')
    )
      return true;
  }
  return false;
}

/** A .cpuprofile with its nodes by id and each node's parent id. */
function loadProfile(file) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  return { profile, byId, parent };
}

/**
 * For samples whose own frame is `leaf` (e.g. writeUtf8String), which application or library
 * frame called it: the nearest frame outside node's internals. Says who pays for a native cost.
 */
export function callersOf(files, leaf, top = 10, window) {
  const out = new Map();
  let all = 0;
  for (const file of files) {
    const { profile, byId, parent } = loadProfile(file);
    let at = profile.startTime;
    profile.samples.forEach((sid, i) => {
      at += profile.timeDeltas[i] ?? 0;
      if (window && (at < window.fromUs || at > window.toUs)) return;
      const node = byId.get(sid);
      if (node.callFrame.functionName !== leaf) return;
      const dt = Math.max(0, profile.timeDeltas[i] ?? 0);
      all += dt;
      let id = parent.get(node.id);
      while (id !== undefined && (byId.get(id).callFrame.url.startsWith('node:') || byId.get(id).callFrame.url === '')) id = parent.get(id);
      const k = id === undefined ? '(none)' : keyOf(byId.get(id).callFrame);
      out.set(k, (out.get(k) ?? 0) + dt);
    });
  }
  return [...out]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, ms: us / 1000, pct: (100 * us) / all }));
}

/**
 * Aggregates several profiles (e.g. the three replicas), optionally only the samples inside
 * `window` ({ fromUs, toUs } on the process.hrtime clock). Times are in sample counts weighted by
 * each sample's time delta, reported in ms and as % of busy time (all but "(idle)").
 */
export function analyzeCpuProfiles(files, top = 25, window) {
  const self = new Map();
  const inclusive = new Map();
  const modules = new Map();
  let busyUs = 0;
  let totalUs = 0;
  let excludedUs = 0;
  for (const file of files) {
    const { profile, byId, parent } = loadProfile(file);
    const { samples, timeDeltas } = profile;
    let at = profile.startTime;
    for (let i = 0; i < samples.length; i++) {
      // A sample's delta is the time since the previous one: charge it to this sample.
      const dt = Math.max(0, timeDeltas[i] ?? 0);
      at += timeDeltas[i] ?? 0;
      // V8 stamps samples with CLOCK_MONOTONIC µs, the clock of process.hrtime: a window taken
      // in the bench process selects the same span in the profile.
      if (window && (at < window.fromUs || at > window.toUs)) continue;
      const node = byId.get(samples[i]);
      const name = node.callFrame.functionName;
      totalUs += dt;
      if (name === '(idle)') continue;
      if (excluded(node, byId, parent)) {
        excludedUs += dt;
        continue;
      }
      busyUs += dt;
      const k = keyOf(node.callFrame);
      self.set(k, (self.get(k) ?? 0) + dt);
      const m = name.startsWith('(') ? name : moduleOf(node.callFrame.url);
      modules.set(m, (modules.get(m) ?? 0) + dt);
      const seen = new Set();
      for (let id = node.id; id !== undefined; id = parent.get(id)) {
        const f = byId.get(id).callFrame;
        if (f.functionName === '(root)') break;
        const key = keyOf(f);
        if (seen.has(key)) continue;
        seen.add(key);
        inclusive.set(key, (inclusive.get(key) ?? 0) + dt);
      }
    }
  }
  const rank = (map) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: us / 1000, pct: (100 * us) / busyUs }));
  return {
    busyMs: busyUs / 1000,
    totalMs: totalUs / 1000,
    excludedMs: excludedUs / 1000,
    self: rank(self),
    inclusive: rank(inclusive),
    modules: rank(modules),
  };
}
