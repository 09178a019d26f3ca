/**
 * Compile-only: `npm run typecheck` fails if a line marked @ts-expect-error compiles, or if a
 * line without it does not. Nothing here runs.
 */
import { on, once, type EventEmitter } from 'node:events';
import type { RequestListener } from 'node:http';
import { Pool, type PoolClient } from 'pg';
import {
  createPostbackRouter,
  MemoryStore,
  PostgresStore,
  type ActionEvent,
  type ActionState,
  type InquiryState,
  type PgClient,
  type PostbackStore,
  type InquiryEvent,
  type PostbackError,
  type PostbackEvent,
  type Rejection,
} from '../lib';

const postbacks = createPostbackRouter({ allowedIps: ['192.0.2.0/24'], store: new MemoryStore() });

postbacks.on('action', async (action: ActionEvent) => {
  const id: string = action.actionId;
  const payout: string | undefined = action.payout;
  const when: Date | undefined = action.eventDate;
  const trigger: 'lifecycle' | 'clearing' | 'reconciliation' = action.trigger;
  // @ts-expect-error payout is a decimal string, never a number
  const wrong: number | undefined = action.payout;
  // @ts-expect-error no such field on an action
  action.inquiryId;
  // @ts-expect-error events are read-only
  action.actionId = 'x';
  await Promise.resolve([id, payout, when, trigger, wrong]);
});

postbacks.on('inquiry', (inquiry: InquiryEvent) => {
  const state: 'created' | 'resolved' = inquiry.state;
  state;
});

postbacks.on('duplicate', (event: PostbackEvent) => {
  if (event.kind === 'action') event.actionId;
  else if (event.kind === 'inquiry') event.inquiryId;
  // @ts-expect-error actionId exists only once narrowed to an action
  event.actionId;
});

postbacks.on('rejected', (rejection: Rejection) => rejection.code);
postbacks.on('error', (error: PostbackError) => error.status);

// @ts-expect-error no such event
postbacks.on('acton', () => undefined);
// @ts-expect-error an action listener does not receive an inquiry
postbacks.on('action', (inquiry: InquiryEvent) => inquiry);
// @ts-expect-error listenerCount takes event names only
postbacks.listenerCount('nope');

// @ts-expect-error allowedIps is required
createPostbackRouter({});
// @ts-expect-error fields maps to known field names only
createPostbackRouter({ allowedIps: ['::1'], fields: { user: 'userId' } });
// @ts-expect-error trustProxy: true is not allowed
createPostbackRouter({ allowedIps: ['::1'], trustProxy: true });

const custom: PostbackStore = {
  begin: async () => ({
    previous: null,
    transaction: undefined,
    transactional: false,
    commit: () => undefined,
    release: async () => undefined,
  }),
};
createPostbackRouter({ allowedIps: ['::1'], store: custom, fields: { user: 'subId1' }, trustProxy: ['10.0.0.0/8'] });

// The second argument: ctx.previous by event kind, ctx.transaction by store.
postbacks.on('action', (_action, ctx) => {
  const previous: ActionState | null = ctx.previous;
  const none: undefined = ctx.transaction;
  // @ts-expect-error MemoryStore gives no transaction
  const client: PgClient = ctx.transaction;
  return [previous, none, client];
});
postbacks.on('inquiry', (_inquiry, ctx) => {
  const state: 'created' | 'resolved' | undefined = ctx.previous?.state;
  const previous: InquiryState | null = ctx.previous;
  // @ts-expect-error an inquiry's previous state has no action trigger
  ctx.previous?.trigger;
  return [state, previous];
});
postbacks.on('stale', (event, ctx) => {
  const late: ActionEvent | InquiryEvent = event;
  const kept: ActionState | InquiryState | null = ctx.previous;
  // @ts-expect-error a stale event may be an inquiry's: its kind tells which
  event.status;
  return event.kind === 'action' ? [late, kept, event.status] : [late, kept, event.state];
});

const withPostgres = createPostbackRouter({
  allowedIps: ['::1'],
  store: new PostgresStore<PoolClient>({ pool: new Pool(), schema: 'shop' }),
});
withPostgres.on('action', async (action, ctx) => {
  const client: PoolClient = ctx.transaction;
  await client.query('INSERT INTO ledger (action_id) VALUES ($1)', [action.actionId]);
});
const plain = createPostbackRouter({
  allowedIps: ['::1'],
  store: new PostgresStore({ connectionString: 'postgres://localhost/shop' }),
});
plain.on('action', async (_action, ctx) => {
  const { rows } = await ctx.transaction.query('SELECT 1');
  return rows;
});
// @ts-expect-error a store is given a connection string or a pool, not both
new PostgresStore({ connectionString: 'postgres://localhost/shop', pool: new Pool() });

// The router is a Node EventEmitter: events.once and events.on take it, setMaxListeners and
// eventNames are there, and its own listener methods stay typed by event.
// The router is made by a subclass of EventEmitter; its type is the emitter with typed methods,
// which this rule cannot see.
// eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
const asEmitter: EventEmitter = postbacks;
async function nodeHelpers(): Promise<unknown[]> {
  const [first] = (await once(postbacks, 'action')) as [ActionEvent];
  for await (const [next] of on(postbacks, 'inquiry')) return [first.actionId, next as unknown];
  postbacks.setMaxListeners(50);
  const names: (string | symbol)[] = postbacks.eventNames();
  return [asEmitter, names, postbacks.getMaxListeners()];
}
nodeHelpers satisfies () => Promise<unknown[]>;
postbacks
  .once('action', (action: ActionEvent) => action.actionId)
  .off('stale', (event: ActionEvent | InquiryEvent) => event);
// @ts-expect-error once keeps its typed events
postbacks.once('actions', () => undefined);
// @ts-expect-error off keeps its typed listeners
postbacks.off('action', (inquiry: InquiryEvent) => inquiry);
// @ts-expect-error emit takes each event's own arguments
postbacks.emit('action', 'not an event');

// Every host's adapter: nodeHandler is a node:http request listener, fetchHandler a web one.
const asListener: RequestListener = postbacks.nodeHandler({ basePath: '/impact' });
const fetched: Promise<Response> = postbacks.fetchHandler()(new Request('http://x/actions'), {
  clientAddress: undefined,
});
// @ts-expect-error the client address is text, as hosts give it
void postbacks.fetchHandler()(new Request('http://x/actions'), { clientAddress: 1 });
// @ts-expect-error basePath is a path
postbacks.nodeHandler({ basePath: 1 });
export const adapters = [asListener, fetched];
