// The test page, bundled by shared-stream.test.ts with esbuild and served at the nginx origin:
// the client package as an app uses it, driven through `window.harness`.
import { createElement, useEffect } from 'react';
import { createRoot } from 'react-dom/client';
import { Switchboard, type TokenAnswer } from '../../src/index.js';
import { SwitchboardProvider, useJob, useSwitchboard, type JobState } from '../../src/react.js';

export interface StartOptions {
  userId: string;
  ttlSeconds: number;
  renewBeforeMs?: number;
}

/** What the test reads back. */
export interface HarnessState {
  role: string;
  lastEventId: string | undefined;
  events: { id: string; seq: number }[];
  resets: string[];
  errors: string[];
  job: JobState | undefined;
}

declare global {
  interface Window {
    /** Exposed by the test: POST /v1/tokens, as the app's backend would. */
    mintToken(userId: string, ttlSeconds: number): Promise<TokenAnswer>;
    harness: typeof harness;
  }
}

const state: HarnessState = { role: 'closed', lastEventId: undefined, events: [], resets: [], errors: [], job: undefined };
let client: Switchboard<{ message: { seq: number } }> | undefined;

const harness = {
  /** A client of the shared kind, handling `message` events. */
  start({ userId, ttlSeconds, renewBeforeMs }: StartOptions): void {
    client = new Switchboard<{ message: { seq: number } }>({
      userId,
      getToken: () => window.mintToken(userId, ttlSeconds),
      ...(renewBeforeMs === undefined ? {} : { renewBeforeMs }),
      onError: (err) => state.errors.push(String(err)),
    });
    client.on('message', (event) => state.events.push({ id: event.id, seq: event.data.seq }));
    client.onReset((info) => state.resets.push(info.reason));
    client.start();
  },

  /** A React app: useSwitchboard owns the client, useJob shows one job. */
  renderJob(userId: string, correlationId: string): void {
    const root = document.createElement('div');
    root.id = 'app';
    document.body.append(root);
    createRoot(root).render(createElement(App, { userId, correlationId }));
  },

  read(): HarnessState {
    return { ...state, role: client?.role ?? state.role, lastEventId: client?.lastEventId ?? state.lastEventId };
  },
};
window.harness = harness;

function App({ userId, correlationId }: { userId: string; correlationId: string }) {
  const app = useSwitchboard({ userId, getToken: () => window.mintToken(userId, 3600), onError: (err) => state.errors.push(String(err)) });
  useEffect(() => app.onReset((info) => state.resets.push(info.reason)), [app]);
  return createElement(SwitchboardProvider, { value: app }, createElement(JobView, { correlationId }));
}

function JobView({ correlationId }: { correlationId: string }) {
  const job = useJob(correlationId);
  state.job = job;
  return createElement('pre', { id: 'job' }, JSON.stringify(job.job ?? null));
}
