import type { HistoryFilter } from '../../lib';

/** A filter as a history log receives it: everything since the epoch, 10 at most, unless `set` says otherwise. */
export function historyFilter(set: Partial<HistoryFilter> = {}): HistoryFilter {
  return {
    actionId: null,
    subId1: null,
    outcome: null,
    route: null,
    code: null,
    since: new Date(0),
    until: null,
    limit: 10,
    before: null,
    ...set,
  };
}
