import { expect } from 'chai';
import type { Recorded } from '../helpers/create-app';

/** No typed event reached the host. */
export function expectNoEmit(events: Recorded): void {
  expect(events.action, 'action events').to.deep.equal([]);
  expect(events.inquiry, 'inquiry events').to.deep.equal([]);
  expect(events.catalog, 'catalog events').to.deep.equal([]);
}

/** A hostile case: what to send, and the status and code it must get. */
export interface HostileCase {
  readonly name: string;
  readonly status: number;
  readonly code?: string;
}
