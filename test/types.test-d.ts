/**
 * Compile-only: `npm run typecheck` fails if a line marked @ts-expect-error compiles, or if a
 * line without it does not. Nothing here runs.
 */
import {
  createPostbackRouter,
  MemoryStore,
  type ActionEvent,
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
  const trigger: 'lifecycle' | 'clearing' = action.trigger;
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
