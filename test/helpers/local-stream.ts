// A server-side response joined to a real client socket, in this process: for unit tests of
// SseStream and the registry without a replica process. The client reads everything written
// into `received()`.
import { createServer, get, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TeardownHost } from './redis-server.js';

export interface LocalResponse {
  response: ServerResponse;
  /** Everything the client has read so far. */
  received(): string;
  /** Resolves once the client has read text matching `test` (or rejects after `timeoutMs`). */
  waitForText(test: RegExp, timeoutMs?: number): Promise<string>;
}

export async function localResponse(t: TeardownHost): Promise<LocalResponse> {
  let handed: ((response: ServerResponse) => void) | undefined;
  const responded = new Promise<ServerResponse>((resolve) => {
    handed = resolve;
  });
  const server = createServer((_request, response) => handed?.(response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  let text = '';
  const listeners = new Set<() => void>();
  const request = get({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/' }, (response) => {
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      text += chunk;
      for (const listener of listeners) listener();
    });
  });
  request.on('error', () => {});
  const response = await responded;
  return {
    response,
    received: () => text,
    waitForText: (test, timeoutMs = 2000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (!test.test(text)) return;
          listeners.delete(check);
          clearTimeout(timer);
          resolve(text);
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`timed out waiting for ${test}; got ${JSON.stringify(text.slice(-300))}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      }),
  };
}
