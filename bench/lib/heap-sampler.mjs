// Preloaded into a replica by bench/allocations.mjs (`--import`): V8's sampling heap profiler,
// started on SIGUSR1 and written to $HEAP_SAMPLE_OUT on SIGUSR2. With HEAP_SAMPLE_PROMOTED=1 it
// keeps only what outlived the young generation (objects a scavenge copied and a later major GC
// freed); otherwise every allocation, short-lived ones included.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

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
  writeFileSync(process.env.HEAP_SAMPLE_OUT, JSON.stringify(profile));
  process.stdout.write('heap sample written\n');
});
