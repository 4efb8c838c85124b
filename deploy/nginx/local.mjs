// nginx without Docker (`npm run demo`, the tests): fills in nginx.conf.template the way the nginx
// image's envsubst step does in docker-compose.yml, and runs nginx inside one directory of its
// own — config, pid, logs and temp files — so it needs no root and leaves nothing behind.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const TEMPLATE = readFileSync(new URL('./nginx.conf.template', import.meta.url), 'utf8');
/** The production shape with TLS and HTTP/2 to browsers (`settings.tls`). */
const HTTP2_TEMPLATE = readFileSync(new URL('./nginx-http2.conf.template', import.meta.url), 'utf8');
const PLACEHOLDER = /\$\{([A-Z_]+)\}/g;

/** Every `${NAME}` the template uses (docker-compose.yml must set each one for the nginx image). */
export const TEMPLATE_VARIABLES = [...new Set([...TEMPLATE.matchAll(PLACEHOLDER)].map((match) => match[1]))];

/**
 * One replica's line in the template's `upstream switchboard` block (the template says why 1 s).
 * docker-compose.yml writes the same for its replicas; a test holds it to this.
 * @param {string} address `host:port`
 */
export function upstreamServer(address) {
  return `server ${address} max_fails=1 fail_timeout=1s;`;
}

/**
 * @typedef {object} NginxSettings
 * @property {string} listen      `127.0.0.1:8080`
 * @property {string[]} replicas  Switchboard replicas as `host:port`
 * @property {string} worker      the demo worker as `host:port`
 * @property {string} accessLog   a path, or `off` (written as /dev/null: the template's access_log
 *                                names its log format, which `access_log off` cannot take)
 * @property {{ listen: string, certFile: string, keyFile: string }} [tls]
 *                                renders nginx-http2.conf.template instead: HTTP/2 over TLS on
 *                                `tls.listen`, and `listen` only redirects to HTTPS
 */

/** @param {NginxSettings} settings @returns {string} the nginx.conf text */
export function renderNginxConfig({ listen, replicas, worker, accessLog, tls }) {
  const values = {
    LISTEN: listen,
    SWITCHBOARD_SERVERS: replicas.map(upstreamServer).join(' '),
    WORKER_SERVER: `server ${worker};`,
    ACCESS_LOG: accessLog === 'off' ? '/dev/null' : accessLog,
    ...(tls === undefined ? {} : { LISTEN_TLS: tls.listen, TLS_CERT_FILE: tls.certFile, TLS_KEY_FILE: tls.keyFile }),
  };
  const [name, template] = tls === undefined ? ['nginx.conf.template', TEMPLATE] : ['nginx-http2.conf.template', HTTP2_TEMPLATE];
  return template.replace(PLACEHOLDER, (_, placeholder) => {
    // A placeholder left in would reach nginx as an unknown variable: fail here, by name.
    if (!(placeholder in values)) throw new Error(`${name} uses \${${placeholder}}, which local.mjs does not fill in`);
    return values[placeholder];
  });
}

/**
 * Writes the config into `dir` and returns the arguments that run nginx in the foreground
 * (`daemon off`, so the caller owns the process) with `dir` as its prefix. Add `-t` to only
 * check the config. `-e` (nginx 1.19.5+) keeps even start-up errors out of /var/log/nginx.
 * @param {string} dir an empty directory the caller removes afterwards
 * @param {NginxSettings} settings
 * @returns {string[]}
 */
export function prepareNginx(dir, settings) {
  mkdirSync(join(dir, 'temp'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, renderNginxConfig(settings));
  return ['-p', `${dir}/`, '-c', conf, '-e', join(dir, 'error.log'), '-g', `daemon off; pid ${join(dir, 'nginx.pid')};`];
}
