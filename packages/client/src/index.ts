export type { CallbackEventData, DefaultEvents, EventMap, ResetInfo, SwitchboardEvent } from './events.js';
export { isCallbackOf, statusOf, withCallback, type Job, type JobCallback } from './job-state.js';
export { connectSwitchboard, Switchboard, SwitchboardHttpError, type Role, type SwitchboardOptions } from './switchboard.js';
export type { TokenAnswer, TokenSource } from './token-keeper.js';
