import type { ActionEvent, ActionState, DeliveryContext, InquiryEvent, InquiryState } from 'impact-postbacks';

/** Exact money in cents from impact.com's decimal strings ("12.50" → 1250). */
export function toCents(amount: string | null | undefined): number {
  if (amount === undefined || amount === null) return 0;
  const [whole = '0', fraction = ''] = amount.replace('-', '').split('.');
  const cents = Number(whole) * 100 + Number(fraction.padEnd(2, '0').slice(0, 2));
  return amount.startsWith('-') ? -cents : cents;
}

export function formatCents(cents: number): string {
  const sign = cents < 0 ? '-' : '';
  const absolute = Math.abs(cents);
  return `${sign}${Math.floor(absolute / 100)}.${String(absolute % 100).padStart(2, '0')}`;
}

/** What an action in a given state is worth to its user: its payout, or nothing once reversed. */
export function worthCents(status: string | null | undefined, payout: string | null | undefined): number {
  return status === 'REVERSED' ? 0 : toCents(payout);
}

/**
 * What one postback moves: the difference between what the action is worth now and what it was
 * worth in the state the journal recorded before (ctx.previous). Tracked: its payout; modified:
 * the change; reversed: minus all that was credited. A field the postback lacks keeps its value.
 */
export function creditCents(event: ActionEvent, previous: ActionState | null): number {
  const status = event.status ?? previous?.status;
  const payout = event.payout ?? previous?.payout;
  return worthCents(status, payout) - worthCents(previous?.status, previous?.payout);
}

export function userOf(event: ActionEvent): string {
  return event.subId1 ?? event.customerId ?? '(unknown)';
}

export interface UserBalance {
  readonly user: string;
  readonly pendingCents: number;
  readonly clearedCents: number;
  readonly actions: number;
}

export interface InquiryRow {
  readonly inquiryId: string;
  readonly state: string;
  readonly resolutionStatus: string;
  readonly expectedPayout: string;
}

/**
 * The example's cashback ledger: one entry per postback, crediting the difference from the
 * previous state, so that a user's balance is the sum of the entries. `T` is the transaction
 * the router's store gives listeners (with PostgresStore, entries are written in it).
 */
export interface Ledger<T> {
  applyAction(event: ActionEvent, ctx: DeliveryContext<ActionState, T>): void | Promise<void>;
  applyInquiry(event: InquiryEvent, ctx: DeliveryContext<InquiryState, T>): void | Promise<void>;
  balances(): Promise<UserBalance[]>;
  inquiries(): Promise<InquiryRow[]>;
}

interface ActionEntry {
  user: string;
  /** The state last applied: what the action is worth is worked out from it, not from ctx.previous. */
  status: string | null;
  payout: string | null;
  cents: number;
  cleared: boolean;
}

/**
 * The ledger in memory, for the example without a database, kept as the README advises for a
 * store whose claims are not transactions: each action's last applied state beside its credit,
 * and each change applied once by its ctx.idempotencyKey. A restart forgets everything, as the
 * default MemoryStore does.
 */
export class MemoryLedger implements Ledger<undefined> {
  private readonly actions = new Map<string, ActionEntry>();
  private readonly applied = new Set<string>();
  private readonly inquiryRows = new Map<string, InquiryRow>();

  applyAction(event: ActionEvent, ctx: DeliveryContext<ActionState, undefined>): void {
    if (this.applied.has(ctx.idempotencyKey)) return;
    const known = this.actions.get(event.actionId);
    // The ordering rule on the ledger's own state, which a listener that failed after its
    // write leaves ahead of the store's: a late PENDING never undoes a final state.
    const final = known?.status === 'APPROVED' || known?.status === 'REVERSED';
    if (final && (event.status ?? known.status) === 'PENDING' && event.trigger !== 'clearing') return;
    this.applied.add(ctx.idempotencyKey);
    const entry = known ?? {
      user: userOf(event),
      status: null,
      payout: null,
      cents: 0,
      cleared: false,
    };
    entry.status = event.status ?? entry.status;
    entry.payout = event.payout ?? entry.payout;
    entry.cents = worthCents(entry.status, entry.payout);
    if (event.trigger === 'clearing') entry.cleared = true;
    this.actions.set(event.actionId, entry);
  }

  applyInquiry(event: InquiryEvent): void {
    this.inquiryRows.set(event.inquiryId, {
      inquiryId: event.inquiryId,
      state: event.state,
      resolutionStatus: event.resolutionStatus ?? '',
      expectedPayout: event.expectedPayout ?? '',
    });
  }

  balances(): Promise<UserBalance[]> {
    const byUser = new Map<string, { pendingCents: number; clearedCents: number; actions: number }>();
    for (const entry of this.actions.values()) {
      const balance = byUser.get(entry.user) ?? { pendingCents: 0, clearedCents: 0, actions: 0 };
      if (entry.cleared) balance.clearedCents += entry.cents;
      else balance.pendingCents += entry.cents;
      balance.actions += 1;
      byUser.set(entry.user, balance);
    }
    return Promise.resolve(
      [...byUser].map(([user, balance]) => ({ user, ...balance })).sort((a, b) => a.user.localeCompare(b.user)),
    );
  }

  inquiries(): Promise<InquiryRow[]> {
    return Promise.resolve([...this.inquiryRows.values()]);
  }
}
