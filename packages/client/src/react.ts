import { createContext, useContext, useEffect, useMemo, useRef, useState } from 'react';
import type { DefaultEvents, EventMap, SwitchboardEvent } from './events.js';
import { isCallbackOf, withCallback, type Job } from './job-state.js';
import { Switchboard, type SwitchboardOptions } from './switchboard.js';

/** The client the hooks below use when none is passed: provide it once, near the root. */
export const SwitchboardContext = createContext<Switchboard | null>(null);
export const SwitchboardProvider = SwitchboardContext.Provider;

/**
 * A client for this component's lifetime: started on mount, closed on unmount (another tab of
 * the user then takes the stream over). A new client only when the user, URL or topics change;
 * a new `getToken` function each render is fine.
 */
export function useSwitchboard<Events extends EventMap = DefaultEvents>(options: SwitchboardOptions): Switchboard<Events> {
  const latest = useRef(options);
  latest.current = options;
  const topics = (options.topics ?? []).join(',');
  // biome-ignore lint/correctness/useExhaustiveDependencies: the client is remade for these keys only; the rest is read through `latest`
  const client = useMemo(
    () => new Switchboard<Events>({ ...latest.current, getToken: () => latest.current.getToken() }),
    [options.userId, options.url, topics, options.share],
  );
  useEffect(() => {
    client.start();
    return () => client.close();
  }, [client]);
  return client;
}

/** Calls `handler` for each event of `type` while the component is mounted. */
export function useSwitchboardEvent<Data = unknown>(type: string, handler: (event: SwitchboardEvent<Data>) => void, client?: Switchboard): void {
  const active = useClient(client);
  const latest = useRef(handler);
  latest.current = handler;
  useEffect(() => active.on(type, (event) => latest.current(event as SwitchboardEvent<Data>)), [active, type]);
}

export interface JobState {
  /** Undefined until the first answer of GET /v1/jobs/:id. */
  job: Job | undefined;
  /** The last fetch's failure, cleared by the next success. */
  error: unknown;
  /** True while a fetch is in flight. */
  loading: boolean;
}

export interface UseJobOptions {
  client?: Switchboard;
  /** Event types the job's callbacks arrive as (the callback's X-Event-Type); default `callback`. */
  types?: readonly string[];
}

/**
 * A job's state: GET /v1/jobs/:id, then each callback of it seen on the stream merged in, and
 * fetched again after a `reset` (events may have been missed; the job record has their payloads).
 */
export function useJob(correlationId: string | undefined, { client, types = ['callback'] }: UseJobOptions = {}): JobState {
  const active = useClient(client);
  const [state, setState] = useState<JobState>({ job: undefined, error: undefined, loading: correlationId !== undefined });
  const typeKey = types.join(',');
  useEffect(() => {
    if (correlationId === undefined) return undefined;
    let mounted = true;
    let fetches = 0;
    /** Callbacks seen since the latest fetch began: its answer may have been read before they were recorded. */
    let sinceFetch: SwitchboardEvent[] = [];
    // Another job (or client): nothing of the last one's state may show meanwhile.
    setState({ job: undefined, error: undefined, loading: true });
    const refetch = (): void => {
      const fetchNumber = ++fetches;
      sinceFetch = [];
      if (fetchNumber > 1) setState((current) => ({ ...current, loading: true }));
      active.fetchJob(correlationId).then(
        (job) => {
          if (!mounted || fetchNumber !== fetches) return;
          const merged = sinceFetch.reduce((state, event) => (isCallbackOf(correlationId, event) ? withCallback(state, event) : state), job);
          setState({ job: merged, error: undefined, loading: false });
        },
        (error: unknown) => {
          if (mounted && fetchNumber === fetches) setState((current) => ({ ...current, error, loading: false }));
        },
      );
    };
    const onEvent = (event: SwitchboardEvent): void => {
      if (!isCallbackOf(correlationId, event)) return;
      sinceFetch.push(event);
      setState((current) => (current.job === undefined ? current : { ...current, job: withCallback(current.job, event) }));
    };
    const stops = [...typeKey.split(',').map((type) => active.on(type, onEvent)), active.onReset(refetch)];
    refetch();
    return () => {
      mounted = false;
      for (const stop of stops) stop();
    };
  }, [active, correlationId, typeKey]);
  return state;
}

function useClient(client: Switchboard | undefined): Switchboard {
  const provided = useContext(SwitchboardContext);
  const active = client ?? provided;
  if (active === null) throw new Error('No Switchboard client: pass one, or render inside <SwitchboardProvider value={client}>.');
  return active;
}
