import { setTimeout as sleep } from 'node:timers/promises';
import type http from 'node:http';
import request from 'supertest';
import type { ReconcileOptions } from '../../lib';
import { FakeActionsApi } from '../helpers/fake-actions-api';

export const SID = 'IRtest';
export const TOKEN = 'auth-token-for-tests';

/** A lifecycle postback carrying the fields reconciliation compares, as apiAction lists them. */
export function lifecycle(id: string, status: string, payout: string): string {
  const fields = { ActionId: id, Status: status, Payout: payout, Amount: '100.00', Currency: 'USD' };
  return `/impact/actions?${new URLSearchParams(fields).toString()}`;
}

/** Sends like impact.com: again and again until the answer is 2xx; gives every status seen. */
export async function sendUntilAcknowledged(app: http.RequestListener, url: string, tries = 60): Promise<number[]> {
  const statuses: number[] = [];
  for (let attempt = 0; attempt < tries; attempt += 1) {
    const { status } = await request(app).get(url);
    statuses.push(status);
    if (status >= 200 && status < 300) return statuses;
    await sleep(50);
  }
  return statuses;
}

/**
 * For a describe block: a fake Actions API running through it (its actions cleared after each
 * test), what reconcile() needs to read it, and a list of things to close after each test, in
 * the order they were added.
 */
export function useReconciliation(): {
  readonly api: FakeActionsApi;
  readonly closing: (() => Promise<void>)[];
  readonly options: () => ReconcileOptions;
} {
  const api = new FakeActionsApi(SID, TOKEN);
  const closing: (() => Promise<void>)[] = [];
  before(async () => {
    await api.start();
  });
  after(async () => {
    await api.stop();
  });
  afterEach(async () => {
    for (const close of closing.splice(0)) await close();
    api.actions = [];
    api.delayMs = 0;
  });
  return {
    api,
    closing,
    options: () => ({
      accountSid: SID,
      authToken: TOKEN,
      baseUrl: api.baseUrl,
      since: new Date(Date.now() - 24 * 60 * 60 * 1000),
    }),
  };
}
