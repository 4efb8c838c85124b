import { parseArgs } from 'node:util';
import { isValidTopic, isValidUserId } from '../identifiers.js';
import { CliError } from './cli-error.js';
import { fleetConfig, serviceUrl } from './cli-env.js';
import { callJson } from './http-call.js';

const USAGE = 'usage: switchboard publish <user> <json> | --topic <topic> <json>  [--type t] [--id key] [--url u]';

/**
 * `switchboard publish <user|--topic t> <json>`: one event, through a replica's publish endpoint
 * with PUBLISH_API_KEY. Prints the answer (`{"id", "receivers", "duplicate"}`) as JSON.
 */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { topic: { type: 'string' }, type: { type: 'string' }, id: { type: 'string' }, url: { type: 'string' } },
  });
  const wanted = values.topic === undefined ? 2 : 1;
  if (positionals.length !== wanted) throw new CliError(USAGE, 2);
  const target = values.topic ?? (positionals[0] as string);
  const text = positionals[wanted - 1] as string;
  if (values.topic !== undefined ? !isValidTopic(target) : !isValidUserId(target)) {
    throw new CliError(`"${target}" is not a ${values.topic !== undefined ? 'topic' : 'user id'} (1-128 characters of [A-Za-z0-9._~:@-])`, 2);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new CliError(`the event data must be JSON (a string is '"text"'): ${text}`, 2);
  }
  const config = fleetConfig(['PUBLISH_API_KEY']);
  const path = values.topic !== undefined ? `/v1/topics/${encodeURIComponent(target)}/events` : `/v1/users/${encodeURIComponent(target)}/events`;
  const body = { data, ...(values.type === undefined ? {} : { type: values.type }), ...(values.id === undefined ? {} : { id: values.id }) };
  const { json } = await callJson('POST', serviceUrl(values.url) + path, config.publishApiKeys[0] as string, body);
  process.stdout.write(`${JSON.stringify(json)}\n`);
  return 0;
}
