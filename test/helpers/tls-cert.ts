// A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI for one test
// file and removed at teardown. `spkiSha256` is what Chromium's
// --ignore-certificate-errors-spki-list takes: trust for this one key, not for every certificate.
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TeardownHost } from './redis-server.js';

export interface TestCertificate {
  certFile: string;
  keyFile: string;
  /** The certificate's PEM text: a client's `ca`, so it is trusted like any CA-signed one. */
  certPem: string;
  /** base64 of SHA-256 over the certificate's SubjectPublicKeyInfo (DER). */
  spkiSha256: string;
}

export async function makeTestCertificate(t: TeardownHost): Promise<TestCertificate> {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      '/CN=switchboard-test',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'pipe' },
  );
  const certPem = readFileSync(certFile, 'utf8');
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return { certFile, keyFile, certPem, spkiSha256: createHash('sha256').update(spki).digest('base64') };
}
