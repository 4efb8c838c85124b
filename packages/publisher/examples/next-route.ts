// A Next.js App Router route handler (app/api/reports/route.ts) that starts a job: it registers
// the job with Switchboard, hands the callback URL and secret to the job runner, and answers the
// browser with the correlation id only — the browser watches its stream for the result.
import { Publisher } from '@switchboard/publisher';
import { runReport } from './job-runner.js';

const switchboard = new Publisher({
  url: process.env.SWITCHBOARD_URL ?? 'http://localhost:3000',
  apiKey: process.env.PUBLISH_API_KEY ?? '',
});

/** The signed-in user; replace with your session (next-auth, a cookie, …). */
function userOf(req: Request): string | undefined {
  return req.headers.get('x-demo-user') ?? undefined;
}

export async function POST(req: Request): Promise<Response> {
  const userId = userOf(req);
  if (userId === undefined) return Response.json({ error: 'sign in first' }, { status: 401 });
  const job = await switchboard.createJob({ userId, ttlSeconds: 600 });
  // In production, enqueue it (the secret goes to the runner, never to the browser).
  runReport(job).catch((err: unknown) => console.error('report job failed', err));
  return Response.json({ correlationId: job.correlationId }, { status: 202 });
}
