// An Express backend that uses Switchboard: the browser asks it for a stream token, and it
// publishes when something happens for a user. Copy, then replace `userOf` with your session.
import { isSwitchboardError, type Publisher } from '@switchboard/publisher';
import express, { type Request } from 'express';

export interface ExampleOptions {
  switchboard: Publisher;
  /** The signed-in user of a request (your session or auth middleware); undefined when none. */
  userOf: (req: Request) => string | undefined;
}

export function createApp({ switchboard, userOf }: ExampleOptions): express.Express {
  const app = express();
  app.use(express.json());

  // The browser client's token source: a short-lived token for the signed-in user, minted
  // locally (no round trip to Switchboard) when the Publisher was given STREAM_TOKEN_SECRET.
  app.get('/switchboard/token', async (req, res) => {
    const userId = userOf(req);
    if (userId === undefined) return void res.status(401).json({ error: 'sign in first' });
    res.json(await switchboard.mintToken(userId, { ttlSeconds: 600 }));
  });

  // Something happened for the user: tell every tab they have open, on whichever replica.
  app.post('/orders/:orderId/ship', async (req, res) => {
    const userId = userOf(req);
    if (userId === undefined) return void res.status(401).json({ error: 'sign in first' });
    const { orderId } = req.params;
    try {
      // The id makes a retry (yours, or the SDK's after a 503) deliver once.
      const published = await switchboard.publish(userId, { type: 'order', data: { orderId, state: 'shipped' }, id: `order-${orderId}-shipped` });
      res.status(202).json({ eventId: published.id });
    } catch (err) {
      // Still down after the SDK's retries (or refused): say so; the order itself has shipped.
      if (isSwitchboardError(err)) return void res.status(502).json({ error: 'notification not sent', code: err.code });
      throw err;
    }
  });
  return app;
}
