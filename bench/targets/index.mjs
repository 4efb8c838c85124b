// The systems under test, in report order, and whether each can run on this machine.
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as switchboard from './switchboard.mjs';
import * as rawNode from './raw-node.mjs';
import * as pushpin from './pushpin.mjs';
import { nchan, nchanRedis } from './nchan.mjs';

function hasCommand(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const nchanMissing = () =>
  !hasCommand('nginx')
    ? 'nginx is not installed (apt-get install nginx libnginx-mod-nchan)'
    : !existsSync('/usr/lib/nginx/modules/ngx_nchan_module.so')
      ? 'the Nchan module is not installed (apt-get install libnginx-mod-nchan)'
      : undefined;

export const TARGETS = [
  {
    ...switchboard.info,
    start: switchboard.start,
    missing: () => (existsSync(new URL('../../dist/main.js', import.meta.url)) ? undefined : 'dist/main.js missing: npm run build'),
  },
  { ...nchan.info, start: nchan.start, missing: nchanMissing },
  { ...nchanRedis.info, start: nchanRedis.start, missing: nchanMissing },
  {
    ...pushpin.info,
    start: pushpin.start,
    missing: () => (hasCommand('pushpin') && hasCommand('condure') && hasCommand('zurl') ? undefined : 'pushpin is not installed (apt-get install pushpin)'),
  },
  { ...rawNode.info, start: rawNode.start, missing: () => undefined },
];
