import type { ActionEvent, InquiryEvent } from 'impact-postbacks';

/** Exact money in cents from impact.com's decimal strings ("12.50" → 1250). */
export function toCents(amount: string | undefined): number {
  if (amount === undefined) return 0;
  const [whole = '0', fraction = ''] = amount.replace('-', '').split('.');
  const cents = Number(whole) * 100 + Number(fraction.padEnd(2, '0').slice(0, 2));
  return amount.startsWith('-') ? -cents : cents;
}

export function formatCents(cents: number): string {
  const sign = cents < 0 ? '-' : '';
  const absolute = Math.abs(cents);
  return `${sign}${Math.floor(absolute / 100)}.${String(absolute % 100).padStart(2, '0')}`;
}

interface ActionRecord {
  readonly user: string;
  credited: number;
  status: string;
  cleared: boolean;
}

export interface UserBalance {
  readonly user: string;
  readonly pendingCents: number;
  readonly clearedCents: number;
  readonly actions: number;
}

/**
 * The example's cashback ledger. Each action credits its user with its current payout: a
 * tracked action credits it, a modification moves the balance to the new payout, a reversal
 * takes back all that was credited, and clearing marks the money as paid out. Because every
 * update sets the action to its latest payout (instead of adding deltas blindly), replaying a
 * postback changes nothing: the ledger is idempotent, as the router's README asks.
 */
export class Ledger {
  private readonly actions = new Map<string, ActionRecord>();
  private readonly inquiries = new Map<string, InquiryEvent>();

  applyAction(event: ActionEvent): void {
    const user = event.subId1 ?? event.customerId ?? '(unknown)';
    const record = this.actions.get(event.actionId) ?? { user, credited: 0, status: '', cleared: false };
    const target = event.status === 'REVERSED' ? 0 : toCents(event.payout);
    record.credited = target;
    record.status = event.status ?? record.status;
    if (event.trigger === 'clearing') record.cleared = true;
    this.actions.set(event.actionId, record);
  }

  applyInquiry(event: InquiryEvent): void {
    this.inquiries.set(event.inquiryId, event);
  }

  balances(): UserBalance[] {
    const byUser = new Map<string, { pendingCents: number; clearedCents: number; actions: number }>();
    for (const record of this.actions.values()) {
      const entry = byUser.get(record.user) ?? { pendingCents: 0, clearedCents: 0, actions: 0 };
      if (record.cleared) entry.clearedCents += record.credited;
      else entry.pendingCents += record.credited;
      entry.actions += 1;
      byUser.set(record.user, entry);
    }
    return [...byUser].map(([user, entry]) => ({ user, ...entry })).sort((a, b) => a.user.localeCompare(b.user));
  }

  allInquiries(): InquiryEvent[] {
    return [...this.inquiries.values()];
  }
}
