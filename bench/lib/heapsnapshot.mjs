// Reads two V8 heap snapshots of one replica — before any stream and with N idle streams — and
// says what each stream costs on the JS heap, by constructor (objects) or by kind (strings,
// closures, arrays, ...): (bytes after - bytes before) / N, and objects per stream.
import { readFileSync } from 'node:fs';

function aggregate(file) {
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const { nodes, strings } = snap;
  const out = new Map();
  let total = 0;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + iType]];
    const size = nodes[i + iSize];
    total += size;
    let key;
    if (type === 'object' || type === 'native') key = `${strings[nodes[i + iName]]}`;
    else if (type === 'closure') key = `closure ${strings[nodes[i + iName]] || '(anonymous)'}`;
    else key = `(${type})`;
    const e = out.get(key);
    if (e === undefined) out.set(key, { bytes: size, count: 1 });
    else {
      e.bytes += size;
      e.count++;
    }
  }
  return { byKey: out, total };
}

export function perStreamHeap(beforeFile, afterFile, streams, top = 20) {
  const before = aggregate(beforeFile);
  const after = aggregate(afterFile);
  const rows = [];
  for (const [key, a] of after.byKey) {
    const b = before.byKey.get(key) ?? { bytes: 0, count: 0 };
    rows.push({ name: key, bytesPerStream: (a.bytes - b.bytes) / streams, objectsPerStream: (a.count - b.count) / streams });
  }
  rows.sort((x, y) => y.bytesPerStream - x.bytesPerStream);
  return { heapBytesPerStream: (after.total - before.total) / streams, top: rows.slice(0, top) };
}
