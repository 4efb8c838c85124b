import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type LoadedConfig } from '../config.js';
import { checkRedis } from './doctor-redis.js';
import { checkReplica } from './doctor-replicas.js';
import { fail, type Finding, pass } from './findings.js';

/**
 * `switchboard doctor [--replica url …]`: checks a deployment from a machine with the replicas'
 * environment — the configuration (validated as a replica validates it), Redis (reachable, its
 * mode, its clock) and each replica named (ready, its clock, its secrets the same as here). One
 * line per check; exits 1 when any failed, naming them.
 */
export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { replica: { type: 'string', multiple: true } } });
  const findings: Finding[] = [];
  let loaded: LoadedConfig | undefined;
  try {
    loaded = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    findings.push(fail('env', err.message));
  }
  if (loaded !== undefined) {
    const { config, generated } = loaded;
    const unset = [
      generated.streamTokenSecret === undefined ? [] : ['STREAM_TOKEN_SECRET'],
      generated.publishApiKey === undefined ? [] : ['PUBLISH_API_KEY'],
    ].flat();
    findings.push(
      pass(
        'env',
        config.redis === undefined
          ? `valid; no Redis: one replica only, on the in-process backplane${unset.length > 0 ? ` (${unset.join(', ')} unset: replicas make their own)` : ''}`
          : `valid; Redis ${config.redis.mode}; callbacks ${config.callbackSecrets.length > 0 ? 'signed' : 'UNSIGNED (ALLOW_UNSIGNED_CALLBACKS=true)'}`,
      ),
    );
    if (config.redis !== undefined) findings.push(...(await checkRedis(config.redis)));
    for (const url of values.replica ?? []) findings.push(...(await checkReplica(url, config, unset.length === 0)));
  }

  const width = Math.max(...findings.map((finding) => finding.check.length));
  for (const { check, ok, detail } of findings) process.stdout.write(`${ok ? 'ok  ' : 'FAIL'}  ${check.padEnd(width)}  ${detail}\n`);
  const failed = findings.filter((finding) => !finding.ok);
  if (failed.length === 0) return 0;
  process.stderr.write(
    `switchboard doctor: ${failed.length} ${failed.length === 1 ? 'check' : 'checks'} failed: ${failed.map((f) => `${f.check}: ${f.detail}`).join('; ')}\n`,
  );
  return 1;
}
