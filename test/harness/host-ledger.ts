import type { ActionEvent, ActionState } from '../../lib';

/** What an action in a state is worth to its user, in cents: its payout, nothing once reversed. */
export function worthCents(status: string | null | undefined, payout: string | null | undefined): number {
  if (status === 'REVERSED' || payout === null || payout === undefined) return 0;
  return Math.round(Number(payout) * 100);
}

export interface LedgerEntry {
  readonly key: string;
  readonly actionId: string;
  readonly cents: number;
  /** The state the entry moved the action from (`status payout`), `new` on first sight. */
  readonly from: string;
  readonly to: string;
  readonly trigger: ActionEvent['trigger'];
}

/** The context a ledger reads: ctx.previous and the key the README advises to be idempotent on. */
export interface ChangeContext {
  readonly previous: ActionState | null;
  readonly idempotencyKey?: string;
}

const FINAL = new Set(['APPROVED', 'REVERSED']);

interface State {
  readonly status: string | null | undefined;
  readonly payout: string | null | undefined;
}

function stateText(state: State): string {
  return `${state.status ?? '-'} ${state.payout ?? '-'}`;
}

/** What a change credits, and the states it moves the action between. */
export function changeOf(
  event: ActionEvent,
  previous: State | null,
): { readonly cents: number; readonly from: string; readonly to: string; readonly state: State } {
  const state = { status: event.status ?? previous?.status, payout: event.payout ?? previous?.payout };
  return {
    cents: worthCents(state.status, state.payout) - worthCents(previous?.status, previous?.payout),
    from: previous === null ? 'new' : stateText(previous),
    to: stateText(state),
    state,
  };
}

/**
 * A cashback site's ledger kept as the README advises for stores whose claims are not
 * transactions: each action's last applied state kept beside the entries, and in one step (a
 * transaction of the host's database) an entry crediting the difference between what the action
 * is worth now and what it was worth in that state, unique on the change's idempotency key. So
 * a change delivered again is written once, and an entry written just before a crash (whose
 * record the store never got) is accounted for when the action's next postback comes.
 */
export class HostLedger {
  readonly entries: LedgerEntry[] = [];
  /** Writes refused by the unique key: the same change delivered again. */
  refused = 0;
  /** PENDINGs ignored because the ledger's own state of the action is final. */
  late = 0;
  private readonly keys = new Set<string>();
  private readonly states = new Map<string, State>();

  /** Writes the change unless its key is there, or it is late for the ledger's own state; true if it wrote. */
  apply(event: ActionEvent, ctx: ChangeContext): boolean {
    // Before ctx carried idempotencyKey the README advised meta.key: kept as the fallback so
    // that a run of older code shows what that advice let through.
    const key = ctx.idempotencyKey ?? event.meta.key;
    if (this.keys.has(key)) {
      this.refused += 1;
      return false;
    }
    const own = this.states.get(event.actionId) ?? null;
    const change = changeOf(event, own);
    // The ordering rule on the ledger's own state: it can be ahead of the store's journal (a
    // listener that failed after its write), where the store sees no final state yet.
    if (event.trigger !== 'clearing' && FINAL.has(own?.status ?? '') && change.state.status === 'PENDING') {
      this.late += 1;
      return false;
    }
    this.keys.add(key);
    this.states.set(event.actionId, change.state);
    this.entries.push({
      key,
      actionId: event.actionId,
      cents: change.cents,
      from: change.from,
      to: change.to,
      trigger: event.trigger,
    });
    return true;
  }

  /** The sum credited for one action, or for all. */
  balance(actionId?: string): number {
    return this.entries
      .filter((entry) => actionId === undefined || entry.actionId === actionId)
      .reduce((sum, entry) => sum + entry.cents, 0);
  }

  /** The entries of one action, in the order they were written. */
  of(actionId: string): LedgerEntry[] {
    return this.entries.filter((entry) => entry.actionId === actionId);
  }
}
