import { parseEventPosition } from '../history/cursor.js';
import type { ChannelMessage, EnvelopeHeader } from './backplane.js';
import type { ChannelName } from './redis-keys.js';

/**
 * The wire form of an event on a pub/sub channel, written by the publish script:
 *
 *   <position> <epoch>\n<header JSON>\n<data JSON>
 *
 * The data JSON is never parsed by a receiving replica: it is written to streams as it came.
 * History entries hold the same header and data as the fields `h` and `d`.
 * Anything malformed returns undefined; callers log, count and drop it — never throw.
 */
export function parseWireMessage(channel: ChannelName, payload: string): ChannelMessage | undefined {
  const firstBreak = payload.indexOf('\n');
  const secondBreak = firstBreak < 0 ? -1 : payload.indexOf('\n', firstBreak + 1);
  if (secondBreak < 0) return undefined;
  const space = payload.indexOf(' ');
  if (space < 0 || space > firstBreak) return undefined;
  const positionText = payload.slice(0, space);
  return buildMessage(channel, payload.slice(space + 1, firstBreak), positionText, payload.slice(firstBreak + 1, secondBreak), payload.slice(secondBreak + 1));
}

export function buildMessage(channel: ChannelName, epoch: string, positionText: string, headerJson: string, dataJson: string): ChannelMessage | undefined {
  const position = parseEventPosition(positionText);
  const header = parseHeader(headerJson);
  if (position === undefined || header === undefined || dataJson.length === 0) return undefined;
  return { channel, epoch, position, positionText, header, dataJson };
}

export const encodeHeader = (header: EnvelopeHeader): string => JSON.stringify(header);

function parseHeader(json: string): EnvelopeHeader | undefined {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { t, a, tc } = value as Record<string, unknown>;
  if (typeof t !== 'string' || typeof a !== 'number') return undefined;
  if (tc !== undefined && !isStringRecord(tc)) return undefined;
  return tc === undefined ? { t, a } : { t, a, tc };
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && Object.values(value).every((v) => typeof v === 'string');
}
