// Turns the raw runs into figures (median and spread over rounds per target), Switchboard's
// ratios to each peer, the issue's targets met or missed, and a markdown report.
import { summary } from './stats.mjs';

const PEERS = ['nchan', 'nchan-redis', 'pushpin', 'raw-node'];

/** Every figure: how to read it from one run, its unit, and which direction is better. */
function figures(config) {
  const steps = config.idle.steps;
  const [small, large] = config.broadcast.sizes;
  const idleAt = (i) => (run) => run.idle?.points[i] ?? null;
  const lat = (rate, key) => (run) => run.flow?.latency?.find((l) => l.rate === rate && !l.warm)?.[key] ?? null;
  const warm = (key) => (run) => run.flow?.latency?.find((l) => l.warm)?.[key] ?? null;
  const k = (n) => (n >= 1000 ? `${Math.round(n / 100) / 10}k` : String(n));
  const list = [];
  steps.forEach((n, i) => {
    list.push({ key: `A.kib.${n}`, label: `A: KiB per idle stream at ${k(n)}`, unit: 'KiB', better: 'lower', get: (r) => idleAt(i)(r)?.kibPerStream });
  });
  list.push(
    {
      key: 'A.open',
      label: `A: time to open ${k(steps.at(-1))} streams`,
      unit: 's',
      better: 'lower',
      get: (r) => (idleAt(steps.length - 1)(r)?.openMs ?? NaN) / 1000,
    },
    {
      key: 'A.cpu',
      label: `A: server CPU per 1k stream opens (0 → ${k(steps.at(-1))})`,
      unit: 'ms',
      better: 'lower',
      get: (r) => idleAt(steps.length - 1)(r)?.openCpuMsPer1k,
    },
    {
      key: 'A.ratio',
      label: `A: streams open at ${k(steps.at(-1))} (ratio)`,
      unit: '',
      better: 'higher',
      ratio: true,
      get: (r) => {
        const p = idleAt(steps.length - 1)(r);
        return p ? p.alive / p.streams : null;
      },
    },
  );
  for (const rate of config.latency.rates) {
    list.push(
      { key: `B.${rate}.p50`, label: `B: p50 at ${rate} ev/s`, unit: 'ms', better: 'lower', get: lat(rate, 'p50Ms') },
      { key: `B.${rate}.p99`, label: `B: p99 at ${rate} ev/s`, unit: 'ms', better: 'lower', get: lat(rate, 'p99Ms') },
      { key: `B.${rate}.p999`, label: `B: p99.9 at ${rate} ev/s`, unit: 'ms', better: 'lower', get: lat(rate, 'p999Ms') },
      { key: `B.${rate}.ans99`, label: `B: publish answered (202), p99 at ${rate} ev/s`, unit: 'ms', better: 'lower', get: lat(rate, 'answerP99Ms') },
      { key: `B.${rate}.ratio`, label: `B: delivery ratio at ${rate} ev/s`, unit: '', better: 'higher', ratio: true, get: lat(rate, 'deliveryRatio') },
    );
  }
  if (config.latency.warmupMs > 0) {
    const rate = config.latency.rates.at(-1);
    const after = `warm: after ${config.latency.warmupMs / 1000} s more at that rate`;
    list.push(
      { key: 'B.warm.p50', label: `B: p50 at ${rate} ev/s, ${after}`, unit: 'ms', better: 'lower', get: warm('p50Ms') },
      { key: 'B.warm.p99', label: `B: p99 at ${rate} ev/s, ${after}`, unit: 'ms', better: 'lower', get: warm('p99Ms') },
      { key: 'B.warm.ans99', label: `B: publish answered (202), p99 at ${rate} ev/s, ${after}`, unit: 'ms', better: 'lower', get: warm('answerP99Ms') },
      { key: 'B.warm.ratio', label: `B: delivery ratio at ${rate} ev/s, warm`, unit: '', better: 'higher', ratio: true, get: warm('deliveryRatio') },
    );
  }
  list.push(
    {
      key: 'C.small',
      label: `C: broadcast to ${k(small)}, time to last (p50)`,
      unit: 'ms',
      better: 'lower',
      get: (r) => r.flow?.broadcastSmall?.timeToLastMs?.median,
    },
    {
      key: 'C.small.ratio',
      label: `C: delivery ratio, ${k(small)}`,
      unit: '',
      better: 'higher',
      ratio: true,
      get: (r) => r.flow?.broadcastSmall?.deliveryRatio,
    },
    {
      key: 'C.large',
      label: `C: broadcast to ${k(large)}, time to last (p50)`,
      unit: 'ms',
      better: 'lower',
      get: (r) => r.flow?.broadcastLarge?.timeToLastMs?.median,
    },
    {
      key: 'C.large.ratio',
      label: `C: delivery ratio, ${k(large)}`,
      unit: '',
      better: 'higher',
      ratio: true,
      get: (r) =>
        r.flow?.broadcastLarge ? r.flow.broadcastLarge.deliveryRatio * (r.flow.broadcastLarge.streams / r.flow.broadcastLarge.expectedStreams) : null,
    },
    { key: 'D.rate', label: 'D: peak delivered events/s, targeted', unit: '/s', better: 'higher', get: (r) => r.flow?.throughput?.peak?.eventsPerSec },
    {
      key: 'D.cpu',
      label: 'D: delivered events per server CPU-second, targeted (at peak)',
      unit: '/cpu-s',
      better: 'higher',
      get: (r) => r.flow?.throughput?.peak?.eventsPerCpuSecond,
    },
    { key: 'D.cores', label: 'D: server cores busy at peak, targeted', unit: 'cores', better: 'lower', get: (r) => r.flow?.throughput?.peak?.serverCores },
    { key: 'D.load', label: "D: load processes' cores at peak, targeted", unit: 'cores', better: 'lower', get: (r) => r.flow?.throughput?.peak?.loadCores },
    {
      key: 'D.ratio',
      label: 'D: delivery ratio, targeted (worst step)',
      unit: '',
      better: 'higher',
      ratio: true,
      get: (r) => {
        const s = r.flow?.throughput?.steps;
        return s?.length ? Math.min(...s.map((x) => x.deliveryRatio ?? 1)) : null;
      },
    },
    {
      key: 'F.rate',
      label: `D: peak delivered events/s, fan-out to ${k(small)}`,
      unit: '/s',
      better: 'higher',
      get: (r) => r.flow?.fanout?.peak?.eventsPerSec,
    },
    {
      key: 'F.cpu',
      label: `D: delivered events per server CPU-second, fan-out to ${k(small)}`,
      unit: '/cpu-s',
      better: 'higher',
      get: (r) => r.flow?.fanout?.peak?.eventsPerCpuSecond,
    },
    {
      key: 'B.cpu',
      label: 'D: delivered events per server CPU-second, targeted through batches of 100 (at peak)',
      unit: '/cpu-s',
      better: 'higher',
      get: (r) => r.flow?.batch?.peak?.eventsPerCpuSecond,
    },
    {
      key: 'B.rate',
      label: 'D: peak delivered events/s, targeted through batches',
      unit: '/s',
      better: 'higher',
      get: (r) => r.flow?.batch?.peak?.eventsPerSec,
    },
    {
      key: 'L.cpu',
      label: 'D: delivered events per server CPU-second, targeted live-only (at peak)',
      unit: '/cpu-s',
      better: 'higher',
      get: (r) => r.flow?.live?.peak?.eventsPerCpuSecond,
    },
    { key: 'L.rate', label: 'D: peak delivered events/s, targeted live-only', unit: '/s', better: 'higher', get: (r) => r.flow?.live?.peak?.eventsPerSec },
    {
      key: 'F.ratio',
      label: 'D: delivery ratio, fan-out (worst step)',
      unit: '',
      better: 'higher',
      ratio: true,
      get: (r) => {
        const s = r.flow?.fanout?.steps;
        return s?.length ? Math.min(...s.map((x) => x.deliveryRatio ?? 1)) : null;
      },
    },
  );
  const e = (key) => (run) => run.flow?.overload?.[key] ?? null;
  const x = config.overload?.multiple ?? 2;
  list.push(
    {
      key: 'E.within',
      label: `E: publishes answered within ${config.overload?.answerBoundMs ?? 100} ms, at ${x}× saturation`,
      unit: '',
      better: 'higher',
      ratio: true,
      get: e('answeredWithinBound'),
    },
    { key: 'E.ans99', label: `E: publish answered (202 or 503), p99 at ${x}× saturation`, unit: 'ms', better: 'lower', get: e('answerP99Ms') },
    {
      key: 'E.shed',
      label: `E: share of publishes shed (503) at ${x}× saturation`,
      unit: '',
      better: 'lower',
      ratio: true,
      get: (r) => (r.flow?.overload ? r.flow.overload.shed / Math.max(1, r.flow.overload.sent) : null),
    },
    { key: 'E.p99', label: `E: stream p99 at ${x}× saturation`, unit: 'ms', better: 'lower', get: e('p99Ms') },
    { key: 'E.p99x', label: `E: stream p99 at ${x}× saturation ÷ unloaded p99`, unit: '×', better: 'lower', get: e('p99VsUnloaded') },
    { key: 'E.rss', label: `E: server RSS peak during ${x}× saturation (all processes)`, unit: 'MiB', better: 'lower', get: e('rssPeakMiB') },
    { key: 'E.ratio', label: 'E: delivery ratio of accepted publishes', unit: '', better: 'higher', ratio: true, get: e('deliveryRatio') },
  );
  return list;
}

export function summarize(result) {
  const list = figures(result.config);
  const byTarget = {};
  for (const name of Object.keys(result.targets)) {
    const runs = result.runs.filter((r) => r.target === name);
    byTarget[name] = {};
    for (const f of list) {
      byTarget[name][f.key] = summary(
        runs.map((r) => {
          const v = f.get(r);
          return typeof v === 'number' && Number.isFinite(v) ? v : null;
        }),
      );
    }
  }
  const sb = byTarget.switchboard ?? {};
  const ratios = {};
  for (const f of list) {
    if (f.ratio) continue;
    ratios[f.key] = {};
    for (const peer of PEERS) {
      const a = sb[f.key]?.median;
      const b = byTarget[peer]?.[f.key]?.median;
      ratios[f.key][peer] = a != null && b ? a / b : null;
    }
  }
  return {
    figures: list.map(({ key, label, unit, better, ratio }) => ({ key, label, unit, better, ratio: Boolean(ratio) })),
    byTarget,
    ratios,
    targets: checkTargets(result.config, byTarget),
  };
}

function checkTargets(config, byTarget) {
  const sb = byTarget.switchboard;
  if (!sb) return [];
  const m = (key, t = sb) => t?.[key]?.median ?? null;
  const top = config.idle.steps.at(-1);
  const [, large] = config.broadcast.sizes;
  const out = [];
  const check = (figure, target, value, ok, unit, howMuch) =>
    out.push({ figure, target, value, unit, met: value == null ? null : ok, howMuch: value == null ? null : howMuch });
  const kib = m(`A.kib.${top}`);
  check(`KiB per idle stream at ${top}`, '≤ 12', kib, kib <= 12, 'KiB', kib == null ? null : `${((kib / 12 - 1) * 100).toFixed(0)}% vs target`);
  const open = m('A.open');
  check(`time to open ${top} streams`, '≤ 6 s', open, open <= 6, 's', open == null ? null : `${((open / 6 - 1) * 100).toFixed(0)}% vs target`);
  const p50 = m('B.2000.p50');
  check('p50 at 2,000 ev/s, cross-replica', '≤ 0.5 ms', p50, p50 <= 0.5, 'ms', p50 == null ? null : `${((p50 / 0.5 - 1) * 100).toFixed(0)}% vs target`);
  const p99 = m('B.2000.p99');
  check('p99 at 2,000 ev/s, cross-replica', '≤ 3 ms', p99, p99 <= 3, 'ms', p99 == null ? null : `${((p99 / 3 - 1) * 100).toFixed(0)}% vs target`);
  const c = m('C.large');
  for (const peer of ['nchan', 'nchan-redis']) {
    // A peer that did not run has no figure (and `m` would fall back to Switchboard's own).
    if (byTarget[peer] === undefined) continue;
    const n = m('C.large', byTarget[peer]);
    if (n == null) continue;
    check(
      `broadcast to ${large}, time to last vs ${peer}`,
      `≤ 1.5 × ${peer} (${(1.5 * n).toFixed(0)} ms)`,
      c,
      c <= 1.5 * n,
      'ms',
      c == null ? null : `${(c / n).toFixed(2)}× ${peer}`,
    );
  }
  const cpu = m('D.cpu');
  check(
    'delivered events per server CPU-second (targeted)',
    '≥ 20k',
    cpu,
    cpu >= 20000,
    '/cpu-s',
    cpu == null ? null : `${((cpu / 20000 - 1) * 100).toFixed(0)}% vs target`,
  );
  const fan = m('F.cpu');
  check(
    'delivered events per server CPU-second (fan-out)',
    '≥ 20k',
    fan,
    fan >= 20000,
    '/cpu-s',
    fan == null ? null : `${((fan / 20000 - 1) * 100).toFixed(0)}% vs target`,
  );
  const within = m('E.within');
  check(
    'overload (2× saturation): publishes answered within 100 ms',
    'all answered ones',
    within,
    within >= 0.999,
    '',
    within == null ? null : `${(within * 100).toFixed(1)}% within`,
  );
  const p99x = m('E.p99x');
  check('overload: stream p99 vs unloaded', '≤ 3×', p99x, p99x <= 3, '×', p99x == null ? null : `${p99x.toFixed(1)}× unloaded`);
  // Issue 13: ratios to Nchan + Redis in the same run.
  const peer = byTarget['nchan-redis'];
  if (peer !== undefined) {
    const ratio = (key) => {
      const a = m(key);
      const b = m(key, peer);
      return a == null || !b ? null : a / b;
    };
    const vs = (figure, key, bound, lowerIsBetter) => {
      const r = ratio(key);
      check(
        `${figure} ÷ Nchan + Redis`,
        lowerIsBetter ? `≤ ${bound}×` : `≥ ${bound}×`,
        r,
        r == null ? null : lowerIsBetter ? r <= bound : r >= bound,
        '×',
        r == null ? null : `${r.toFixed(2)}×`,
      );
    };
    vs('p50 at 2,000 ev/s', 'B.2000.p50', 1.5, true);
    vs('p99 at 2,000 ev/s', 'B.2000.p99', 2, true);
    if (sb['B.warm.p50'] !== undefined) {
      vs('p50 at 2,000 ev/s, warm', 'B.warm.p50', 1.5, true);
      vs('p99 at 2,000 ev/s, warm', 'B.warm.p99', 2, true);
    }
    vs(`time to open ${top} streams`, 'A.open', 2, true);
    vs(`KiB per idle stream at ${top}`, `A.kib.${top}`, 1, true);
    vs('targeted events per server CPU-second', 'D.cpu', 1, false);
    vs('fan-out deliveries per server CPU-second', 'F.cpu', 1, false);
  }
  const ratioKeys = Object.keys(sb).filter((k) => k.endsWith('.ratio'));
  const worst = Math.min(...ratioKeys.map((k) => sb[k]?.min ?? 1));
  check(
    'delivery ratio, every scenario (worst run)',
    '1.000',
    worst,
    worst >= 1,
    '',
    worst >= 1 ? 'all delivered' : `${((1 - worst) * 100).toFixed(2)}% missing in the worst run`,
  );
  return out;
}

export function fmt(v, unit = '') {
  if (v == null || !Number.isFinite(v)) return '—';
  if (unit === '' && v <= 1.5) return v.toFixed(3);
  const a = Math.abs(v);
  if (a >= 10000) return `${(v / 1000).toFixed(1)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function cell(s, unit) {
  if (!s) return '—';
  if (s.n === 1) return fmt(s.median, unit);
  return `${fmt(s.median, unit)} [${fmt(s.min, unit)}–${fmt(s.max, unit)}]`;
}

export function renderMarkdown(result) {
  const { summary: sum, targets, meta, config } = result;
  const names = Object.keys(targets);
  const lines = [];
  lines.push(`# Switchboard benchmark — ${meta.startedAt.slice(0, 16).replace('T', ' ')} UTC`);
  lines.push('');
  lines.push(
    `${meta.cpus}, ${meta.memoryGiB} GiB, Node ${meta.node}, git ${meta.gitRevision}${meta.gitDirty ? ' (+ uncommitted src changes)' : ''}; load average at start ${meta.loadAverageAtStart.join(' / ')}. ` +
      `${config.rounds} round(s)${meta.quick ? ' (--quick)' : ''}; each cell is the median over rounds with [min–max].`,
  );
  const missing = names.filter((n) => targets[n].unavailable);
  for (const n of missing) lines.push(`\n**${targets[n].label} was not run: ${targets[n].unavailable}.**`);
  const present = names.filter((n) => !targets[n].unavailable);
  lines.push('');
  lines.push(`| figure | ${present.map((n) => targets[n].label).join(' | ')} |`);
  lines.push(`| --- | ${present.map(() => '---:').join(' | ')} |`);
  for (const f of sum.figures) {
    lines.push(`| ${f.label}${f.unit && f.unit !== '' ? ` (${f.unit})` : ''} | ${present.map((n) => cell(sum.byTarget[n]?.[f.key], f.unit)).join(' | ')} |`);
  }
  const peers = PEERS.filter((p) => present.includes(p));
  if (present.includes('switchboard') && peers.length) {
    lines.push('');
    lines.push('Switchboard as a ratio to each peer (median ÷ median; for "lower is better" figures a ratio above 1 means Switchboard is behind):');
    lines.push('');
    lines.push(`| figure | ${peers.map((p) => `÷ ${targets[p].label}`).join(' | ')} |`);
    lines.push(`| --- | ${peers.map(() => '---:').join(' | ')} |`);
    for (const f of sum.figures) {
      if (f.ratio) continue;
      lines.push(
        `| ${f.label} (${f.better} is better) | ${peers.map((p) => (sum.ratios[f.key]?.[p] == null ? '—' : `${sum.ratios[f.key][p].toFixed(2)}×`)).join(' | ')} |`,
      );
    }
  }
  if (sum.targets.length) {
    lines.push('');
    lines.push('Targets (issues 6 and 13, per replica on this machine):');
    lines.push('');
    lines.push('| figure | target | Switchboard (median) | met? | by how much |');
    lines.push('| --- | --- | ---: | :---: | --- |');
    for (const t of sum.targets)
      lines.push(`| ${t.figure} | ${t.target} | ${fmt(t.value, t.unit)} | ${t.met == null ? '—' : t.met ? 'yes' : '**no**'} | ${t.howMuch ?? '—'} |`);
  }
  const errors = result.runs.filter((r) => r.errors.length);
  if (errors.length) {
    lines.push('');
    lines.push('Errors:');
    for (const r of errors) lines.push(`- round ${r.round + 1} ${r.target}: ${r.errors.join('; ')}`);
  }
  if (result.history?.rows) {
    lines.push('');
    lines.push('History memory (bench/history-memory.mjs): Redis memory per channel by HISTORY_MAX_LEN');
    lines.push('');
    lines.push('| HISTORY_MAX_LEN | event data | entries kept | per channel | per entry |');
    lines.push('| ---: | --- | ---: | ---: | ---: |');
    for (const r of result.history.rows)
      lines.push(
        `| ${r.historyMaxLen} | ${r.payload} (${r.dataBytes} B) | ${r.entriesKept} | ${(r.bytesPerChannel / 1024).toFixed(1)} KiB | ${r.bytesPerEntry} B |`,
      );
  }
  if (result.profile?.markdown) {
    lines.push('');
    lines.push(result.profile.markdown);
  }
  return `${lines.join('\n')}\n`;
}
