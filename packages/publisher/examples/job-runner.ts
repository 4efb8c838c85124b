// A job runner: does the slow work somewhere else, then reports to Switchboard, which tells the
// user. CallbackSender signs with the job's own secret and resends with the same webhook-id
// until the result is taken, so the user sees it once.
import { CallbackSender, type CreatedJob } from '@switchboard/publisher';

const callbacks = new CallbackSender();

/** The work; here, a report of three rows. */
async function buildReport(): Promise<{ rows: number }> {
  return { rows: 3 };
}

export async function runReport(job: Pick<CreatedJob, 'callbackUrl' | 'callbackSecret'>): Promise<void> {
  const report = await buildReport();
  // `status` in the payload becomes the job's status in GET /v1/jobs/:id.
  await callbacks.send({ callbackUrl: job.callbackUrl, secret: job.callbackSecret, payload: { status: 'done', ...report } });
}
