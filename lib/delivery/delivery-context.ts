import type { ActionState, DeliveryContext, InquiryState, PostbackEvent } from '../events';
import { idempotencyKeyOf, stateOf } from '../journal/journal';
import type { JournalRecord, StoreClaim } from '../stores/store';
import type { ClaimUnit } from './claim-unit';

/**
 * The second argument of delivery listeners. Its key and signal are made only when a listener
 * reads them: most never do, and a SHA-256 or an AbortController per postback is not free.
 */
class Context<T> implements DeliveryContext<ActionState | InquiryState, T> {
  readonly previous: ActionState | InquiryState | null;
  readonly transaction: T;
  readonly #event: PostbackEvent;
  readonly #record: JournalRecord | null;
  readonly #unit: ClaimUnit;

  constructor(event: PostbackEvent, claim: StoreClaim<T>, unit: ClaimUnit) {
    this.previous = stateOf(event, claim.previous);
    this.transaction = claim.transaction;
    this.#event = event;
    this.#record = claim.previous;
    this.#unit = unit;
  }

  get idempotencyKey(): string {
    return idempotencyKeyOf(this.#event, this.#record);
  }

  get signal(): AbortSignal {
    return this.#unit.signal;
  }
}

export function deliveryContext<T>(
  event: PostbackEvent,
  claim: StoreClaim<T>,
  unit: ClaimUnit,
): DeliveryContext<ActionState | InquiryState, T> {
  return Object.freeze(new Context(event, claim, unit));
}
