// Preloaded into a replica by bench/allocations.mjs (`--import`): V8's sampling heap profiler,
// started on SIGUSR1 and written to $HEAP_SAMPLE_DIR/heap-<pid>.json on SIGUSR2 (whole, by a
// rename, so a reader polling for it never sees half a file). With HEAP_SAMPLE_PROMOTED=1 it
// keeps only what outlived the young generation (objects a scavenge copied and a later major GC
// freed); otherwise every allocation, short-lived ones included.
import { renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const session = new Session();
session.connect();
const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))));
await post('HeapProfiler.enable');

process.on('SIGUSR1', () => {
  void post('HeapProfiler.startSampling', {
    samplingInterval: 512,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: process.env.HEAP_SAMPLE_PROMOTED !== '1',
  });
});
process.on('SIGUSR2', async () => {
  const { profile } = await post('HeapProfiler.stopSampling');
  const file = join(process.env.HEAP_SAMPLE_DIR, `heap-${process.pid}.json`);
  writeFileSync(`${file}.part`, JSON.stringify(profile));
  renameSync(`${file}.part`, file);
});
