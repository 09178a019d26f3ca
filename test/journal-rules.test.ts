import { expect } from 'chai';
import type { ActionEvent, CatalogEvent, InquiryEvent, InquiryState, JournalRecord } from '../lib';
import { buildEvent } from '../lib/fields/build-event';
import { compileFieldIndex } from '../lib/fields/field-names';
import { ACTION_FIELDS, CATALOG_FIELDS, INQUIRY_FIELDS } from '../lib/fields/field-specs';
import { normalizeFields } from '../lib/fields/normalize-fields';
import {
  idempotencyKeyOf,
  isAlreadyApplied,
  isStale,
  learnedAfter,
  reachesFinalState,
  readByReconciliationSince,
  recordOf,
  sameActionState,
  stateOf,
  subjectOf,
} from '../lib/journal/journal';
import { createApp } from './helpers/create-app';
import { INQUIRY } from './helpers/fixtures';
import { send } from './helpers/send';

const ACTION_INDEX = compileFieldIndex(ACTION_FIELDS, new Map());
const INQUIRY_INDEX = compileFieldIndex(INQUIRY_FIELDS, new Map());
const CATALOG_INDEX = compileFieldIndex(CATALOG_FIELDS, new Map());

const RECEIVED_AT = new Date('2026-11-02T10:00:00.000Z');

function received(fields: Readonly<Record<string, string>>): Record<string, string> {
  return Object.assign(Object.create(null) as Record<string, string>, fields);
}

interface ActionOptions {
  readonly trigger?: ActionEvent['trigger'];
  readonly key?: string;
  readonly receivedAt?: Date;
}

/** An action event as the router builds it from a postback (or reconciliation) of these fields. */
function action(fields: Readonly<Record<string, string>>, options: ActionOptions = {}): ActionEvent {
  const trigger = options.trigger ?? 'lifecycle';
  const route = trigger === 'clearing' ? 'clearing' : 'actions';
  const raw = received({ ActionId: '1.1', ...fields });
  const meta = {
    receivedAt: options.receivedAt ?? RECEIVED_AT,
    ip: '',
    format: trigger === 'reconciliation' ? 'api' : 'query',
    route,
    path: '',
    key: options.key ?? `${route}:k`,
  } as const;
  return buildEvent(route, normalizeFields(raw, ACTION_INDEX), raw, meta, trigger === 'reconciliation') as ActionEvent;
}

/** An inquiry event as the router builds it from a postback of these fields. */
function inquiry(fields: Readonly<Record<string, string>>, key = 'inquiries:k'): InquiryEvent {
  const raw = received({ InquiryId: '4411', ...fields });
  const meta = { receivedAt: RECEIVED_AT, ip: '', format: 'query', route: 'inquiries', path: '', key } as const;
  return buildEvent('inquiries', normalizeFields(raw, INQUIRY_INDEX), raw, meta) as InquiryEvent;
}

function catalog(): CatalogEvent {
  const raw = received({ CatalogId: '777', Sku: 'APP-0016' });
  const meta = {
    receivedAt: RECEIVED_AT,
    ip: '',
    format: 'query',
    route: 'catalog',
    path: '',
    key: 'catalog:k',
  } as const;
  return buildEvent('catalog', normalizeFields(raw, CATALOG_INDEX), raw, meta) as CatalogEvent;
}

/** What the journal holds for an action after a postback (or reconciliation) wrote it. */
function actionRecord(fields: Readonly<Record<string, string | null>>): JournalRecord {
  return {
    status: 'PENDING',
    payout: '5.00',
    amount: '100.00',
    currency: 'USD',
    trigger: 'lifecycle',
    key: 'actions:before',
    receivedAt: '2026-11-01T00:00:00.000Z',
    ...fields,
  };
}

const createdInquiry: JournalRecord = {
  state: 'created',
  resolutionStatus: 'UNRESOLVED',
  expectedPayout: '3.00',
  finalPayout: null,
  currency: 'USD',
  key: 'inquiries:before',
  receivedAt: '2026-11-01T00:00:00.000Z',
};

describe('journal rules', () => {
  describe('subjectOf', () => {
    it('is action:<id> for an action, inquiry:<id> for an inquiry, and none for a catalog postback', () => {
      expect([subjectOf(action({})), subjectOf(inquiry({})), subjectOf(catalog())]).to.deep.equal([
        'action:1.1',
        'inquiry:4411',
        null,
      ]);
    });
  });

  describe('isStale', () => {
    it('holds a lifecycle PENDING for an APPROVED action as stale, but never a clearing postback saying PENDING', () => {
      const approved = actionRecord({ status: 'APPROVED' });
      expect([
        isStale(action({ Status: 'PENDING' }), approved, 'final-states'),
        isStale(action({ Status: 'PENDING' }, { trigger: 'clearing' }), approved, 'final-states'),
      ]).to.deep.equal([true, false]);
    });

    it('reachesFinalState: a lifecycle move into APPROVED or REVERSED from a state that is not final, and nothing else', () => {
      const pending = actionRecord({ status: 'PENDING' });
      const approved = actionRecord({ status: 'APPROVED' });
      const unknown = actionRecord({ status: null });
      expect([
        reachesFinalState(action({ Status: 'REVERSED' }), pending),
        reachesFinalState(action({ Status: 'APPROVED' }), null),
        reachesFinalState(action({ Status: 'APPROVED' }), unknown),
        reachesFinalState(action({ Status: 'REVERSED' }), approved),
        reachesFinalState(action({ Status: 'PENDING' }), pending),
        reachesFinalState(action({ Payout: '5.00' }), pending),
        reachesFinalState(action({ Status: 'APPROVED' }, { trigger: 'clearing' }), pending),
        reachesFinalState(inquiry({ ResolutionStatus: 'APPROVED' }), null),
        reachesFinalState(catalog(), null),
      ]).to.deep.equal([true, true, true, false, false, false, false, false, false]);
    });

    it("holds an inquiry's creation after it was resolved as stale, but not a resolution, nor any with ordering none", () => {
      const resolved = { ...createdInquiry, state: 'resolved', resolutionStatus: 'APPROVED' };
      expect([
        isStale(inquiry({ ResolutionStatus: 'UNRESOLVED' }), resolved, 'final-states'),
        isStale(inquiry({}), resolved, 'final-states'),
        isStale(inquiry({ ResolutionStatus: 'DECLINED' }), resolved, 'final-states'),
        isStale(inquiry({ ResolutionStatus: 'UNRESOLVED' }), createdInquiry, 'final-states'),
        isStale(inquiry({ ResolutionStatus: 'UNRESOLVED' }), resolved, 'none'),
        isStale(inquiry({ ResolutionStatus: 'UNRESOLVED' }), null, 'final-states'),
        isStale(catalog(), resolved, 'final-states'),
      ]).to.deep.equal([true, true, false, false, false, false, false]);
    });
  });

  describe('isAlreadyApplied', () => {
    const reconciled = actionRecord({ status: 'APPROVED', trigger: 'reconciliation', key: 'actions:api' });
    const state = { Status: 'APPROVED', Payout: '5.00', Amount: '100.00', Currency: 'USD' };

    it("holds only a lifecycle postback as already applied by reconciliation's record of its state, not a clearing or another reconciliation", () => {
      expect([
        isAlreadyApplied(action(state), reconciled),
        isAlreadyApplied(action(state, { trigger: 'clearing' }), reconciled),
        isAlreadyApplied(action(state, { trigger: 'reconciliation' }), reconciled),
      ]).to.deep.equal([true, false, false]);
    });

    it('does not hold a lifecycle postback as already applied by the same state that a postback recorded', () => {
      expect([
        isAlreadyApplied(action(state), { ...reconciled, trigger: 'lifecycle' }),
        isAlreadyApplied(action(state), { ...reconciled, trigger: 'clearing' }),
      ]).to.deep.equal([false, false]);
    });
  });

  describe('sameActionState', () => {
    const record = actionRecord({});

    it('counts a field the postback leaves out as no difference', () => {
      expect([
        sameActionState(action({}), record),
        sameActionState(action({ Payout: '5.00' }), record),
        sameActionState(action({ Status: 'PENDING' }), record),
      ]).to.deep.equal([true, true, true]);
    });

    it('counts a payout or amount the record does not hold as a difference', () => {
      expect([
        sameActionState(action({ Payout: '5.00' }), actionRecord({ payout: null })),
        sameActionState(action({ Amount: '100.00' }), actionRecord({ amount: null })),
      ]).to.deep.equal([false, false]);
    });

    it('compares amounts as decimals: 5.5 is the payout 5.50, 0.50 the payout 0.5, and 100 the amount 100.00', () => {
      expect([
        sameActionState(action({ Payout: '5.5', Amount: '100' }), actionRecord({ payout: '5.50' })),
        sameActionState(action({ Payout: '0.50' }), actionRecord({ payout: '0.5' })),
      ]).to.deep.equal([true, true]);
    });

    it('reads zero as zero however it is written: 0, 0.00, -0, -0.00', () => {
      const zeros = ['0', '0.00', '-0', '-0.00'];
      const results = zeros.flatMap((payout) =>
        [...zeros, '0.0'].map((recorded) =>
          sameActionState(action({ Payout: payout }), actionRecord({ payout: recorded })),
        ),
      );
      expect(results).to.deep.equal(results.map(() => true));
    });

    it('counts payouts that differ in their fraction, their whole part or their sign as different', () => {
      expect([
        sameActionState(action({ Payout: '5.50' }), actionRecord({ payout: '5.70' })),
        sameActionState(action({ Payout: '5.50' }), actionRecord({ payout: '7.50' })),
        sameActionState(action({ Payout: '-5.00' }), actionRecord({ payout: '5.00' })),
        sameActionState(action({ Payout: '5.5' }), actionRecord({ payout: '5.05' })),
      ]).to.deep.equal([false, false, false, false]);
    });
  });

  describe('recordOf', () => {
    it("takes an action's state, trigger, key and arrival time from its postback", () => {
      const event = action(
        { Status: 'approved', Payout: '5.50', Amount: '100.00', Currency: 'eur' },
        { trigger: 'clearing', key: 'clearing:x' },
      );
      expect(recordOf(event, actionRecord({}))).to.deep.equal({
        status: 'APPROVED',
        payout: '5.50',
        amount: '100.00',
        currency: 'EUR',
        trigger: 'clearing',
        key: 'clearing:x',
        receivedAt: '2026-11-02T10:00:00.000Z',
      });
    });

    it("keeps in an action's record the fields its postback leaves out from the record before", () => {
      const previous = actionRecord({ status: 'APPROVED', payout: '7.25', amount: '80.00', currency: 'GBP' });
      expect(recordOf(action({}, { key: 'actions:x' }), previous)).to.deep.equal({
        status: 'APPROVED',
        payout: '7.25',
        amount: '80.00',
        currency: 'GBP',
        trigger: 'lifecycle',
        key: 'actions:x',
        receivedAt: '2026-11-02T10:00:00.000Z',
      });
    });

    it("takes an inquiry's state, resolution, payouts, currency, key and arrival time from its postback", () => {
      const event = inquiry(
        { ResolutionStatus: 'approved', ExpectedPayout: '3.00', FinalPayout: '2.50', Currency: 'eur' },
        'inquiries:x',
      );
      expect(recordOf(event, createdInquiry)).to.deep.equal({
        state: 'resolved',
        resolutionStatus: 'APPROVED',
        expectedPayout: '3.00',
        finalPayout: '2.50',
        currency: 'EUR',
        key: 'inquiries:x',
        receivedAt: '2026-11-02T10:00:00.000Z',
      });
    });

    it("keeps in an inquiry's record the fields its postback leaves out from the record before", () => {
      const previous = { ...createdInquiry, finalPayout: '2.75' };
      expect(recordOf(inquiry({}, 'inquiries:x'), previous)).to.deep.equal({
        state: 'created',
        resolutionStatus: 'UNRESOLVED',
        expectedPayout: '3.00',
        finalPayout: '2.75',
        currency: 'USD',
        key: 'inquiries:x',
        receivedAt: '2026-11-02T10:00:00.000Z',
      });
    });
  });

  describe('idempotencyKeyOf', () => {
    it("differs for an action's payout that changes while its status stays, and not for the payout written otherwise", () => {
      const previous = actionRecord({});
      const five = idempotencyKeyOf(action({ Status: 'PENDING', Payout: '5.50' }), previous);
      expect([
        idempotencyKeyOf(action({ Status: 'PENDING', Payout: '7.00' }), previous) === five,
        idempotencyKeyOf(action({ Status: 'PENDING', Payout: '5.5' }), previous) === five,
      ]).to.deep.equal([false, true]);
    });

    it("differs for every part of an inquiry's state: its resolution (and state), expected payout, final payout, currency", () => {
      const resolved = { ResolutionStatus: 'APPROVED', ExpectedPayout: '3.00', FinalPayout: '2.50', Currency: 'USD' };
      const previous = { ...createdInquiry, state: 'resolved', resolutionStatus: 'APPROVED' };
      const keys = [
        idempotencyKeyOf(inquiry(resolved), previous),
        idempotencyKeyOf(inquiry({ ...resolved, ResolutionStatus: 'UNRESOLVED' }), previous),
        idempotencyKeyOf(inquiry({ ...resolved, ResolutionStatus: 'REJECTED' }), previous),
        idempotencyKeyOf(inquiry({ ...resolved, ExpectedPayout: '4.00' }), previous),
        idempotencyKeyOf(inquiry({ ...resolved, FinalPayout: '2.00' }), previous),
        idempotencyKeyOf(inquiry({ ...resolved, Currency: 'EUR' }), previous),
      ];
      expect(new Set(keys).size).to.equal(keys.length);
    });

    it("keeps its value from release to release, so a listener's unique index still knows a change delivered again after an upgrade", () => {
      const previous = actionRecord({});
      expect({
        lifecycle: idempotencyKeyOf(action({ Status: 'APPROVED', Payout: '5.00' }), previous),
        clearing: idempotencyKeyOf(action({ Status: 'APPROVED', Payout: '5.00' }, { trigger: 'clearing' }), previous),
        reconciliation: idempotencyKeyOf(
          action({ Status: 'APPROVED', Payout: '5.00' }, { trigger: 'reconciliation' }),
          previous,
        ),
        zero: idempotencyKeyOf(action({ Status: 'PENDING', Payout: '-0.00' }), previous),
        inquiry: idempotencyKeyOf(inquiry({ ResolutionStatus: 'APPROVED', FinalPayout: '2.50' }), createdInquiry),
        firstInquiry: idempotencyKeyOf(inquiry({ ExpectedPayout: '3.0' }), null),
      }).to.deep.equal({
        // A move into a final state is named by that state alone (0.1.0 named it by the state moved
        // from too): such a move delivered just before an upgrade from 0.1.0 and again after gets a new key.
        lifecycle: 'action:1.1:Sda1n5eHH0TgolPqhCxZjyna9btlmubGohoRtS8AtAc',
        clearing: 'action:1.1:c7AS7ny2ECW124spnvYBVoVObtSwd_w8XXYgeY7wifg',
        // One change, whether its postback or reconciliation delivers it.
        reconciliation: 'action:1.1:Sda1n5eHH0TgolPqhCxZjyna9btlmubGohoRtS8AtAc',
        zero: 'action:1.1:dlRpQFp40PV42hZ2_fT5yB7G-BSOGc_fJzjpMfpLfvQ',
        inquiry: 'inquiry:4411:gAcjLlt8tco-DpK1Z78xIvYf2lzTFlxKmrFcq_9SewY',
        firstInquiry: 'inquiry:4411:4iPz-RxV-TY_a0f66D-xDjsDLWwDklsyegdbE9hHnMk',
      });
    });
  });

  describe('readByReconciliationSince', () => {
    it('is true only for a record that reconciliation wrote after the postback arrived', () => {
      const at = '2026-11-02T10:00:00.000Z';
      const reconciled = actionRecord({ trigger: 'reconciliation', receivedAt: at });
      expect([
        readByReconciliationSince(reconciled, new Date('2026-11-02T09:59:59.999Z')),
        readByReconciliationSince(reconciled, new Date(at)),
        readByReconciliationSince(reconciled, new Date('2026-11-02T10:00:00.001Z')),
        readByReconciliationSince(actionRecord({ trigger: 'lifecycle', receivedAt: at }), new Date(0)),
        readByReconciliationSince(actionRecord({ trigger: 'reconciliation', receivedAt: null }), new Date(0)),
        readByReconciliationSince(null, new Date(0)),
      ]).to.deep.equal([true, false, false, false, false, false]);
    });
  });

  describe('learnedAfter', () => {
    it('is true only for a record whose state came, by any trigger, after the time', () => {
      const at = '2026-11-02T10:00:00.000Z';
      expect([
        learnedAfter(actionRecord({ trigger: 'lifecycle', receivedAt: at }), new Date('2026-11-02T09:59:59.999Z')),
        learnedAfter(actionRecord({ trigger: 'clearing', receivedAt: at }), new Date('2026-11-02T09:59:59.999Z')),
        learnedAfter(actionRecord({ trigger: 'lifecycle', receivedAt: at }), new Date(at)),
        learnedAfter(actionRecord({ trigger: 'lifecycle', receivedAt: null }), new Date(0)),
        learnedAfter(null, new Date(0)),
      ]).to.deep.equal([true, true, false, false, false]);
    });
  });

  describe('stateOf', () => {
    it("gives an action's record as ctx.previous: its fields, the trigger that wrote it, its key and time", () => {
      const states = (['lifecycle', 'clearing', 'reconciliation'] as const).map((trigger) =>
        stateOf(action({}), actionRecord({ trigger, payout: '5.50', key: `k-${trigger}` })),
      );
      expect(states).to.deep.equal(
        (['lifecycle', 'clearing', 'reconciliation'] as const).map((trigger) => ({
          status: 'PENDING',
          payout: '5.50',
          amount: '100.00',
          currency: 'USD',
          trigger,
          key: `k-${trigger}`,
          receivedAt: new Date('2026-11-01T00:00:00.000Z'),
        })),
      );
    });

    it("reads an action record's missing fields as null, its key as empty, its trigger as lifecycle, its time as the epoch", () => {
      expect(stateOf(action({}), {})).to.deep.equal({
        status: null,
        payout: null,
        amount: null,
        currency: null,
        trigger: 'lifecycle',
        key: '',
        receivedAt: new Date(0),
      });
    });

    it("gives an inquiry's record as ctx.previous: its state, resolution, payouts, currency, key and time", () => {
      const record = { ...createdInquiry, state: 'resolved', resolutionStatus: 'APPROVED', finalPayout: '2.50' };
      expect(stateOf(inquiry({}), record)).to.deep.equal({
        state: 'resolved',
        resolutionStatus: 'APPROVED',
        expectedPayout: '3.00',
        finalPayout: '2.50',
        currency: 'USD',
        key: 'inquiries:before',
        receivedAt: new Date('2026-11-01T00:00:00.000Z'),
      } satisfies InquiryState);
    });

    it('reads an inquiry record as created unless it says resolved, and its missing fields as null, empty or the epoch', () => {
      const expected = (key: string, receivedAt: Date, fields: Partial<InquiryState>): InquiryState => ({
        state: 'created',
        resolutionStatus: null,
        expectedPayout: null,
        finalPayout: null,
        currency: null,
        key,
        receivedAt,
        ...fields,
      });
      expect([
        stateOf(inquiry({}), createdInquiry),
        stateOf(inquiry({}), { state: 'RESOLVED' }),
        stateOf(inquiry({}), {}),
      ]).to.deep.equal([
        expected('inquiries:before', new Date('2026-11-01T00:00:00.000Z'), {
          resolutionStatus: 'UNRESOLVED',
          expectedPayout: '3.00',
          currency: 'USD',
        }),
        expected('', new Date(0), {}),
        expected('', new Date(0), {}),
      ]);
    });
  });

  describe('through the router', () => {
    it('shows an inquiry listener as ctx.previous the record its previous postback left', async () => {
      const { app, postbacks, events } = createApp();
      const previous: (InquiryState | null)[] = [];
      postbacks.on('inquiry', (_event, ctx) => void previous.push(ctx.previous));
      await send(app, '/impact/inquiries', 'query', INQUIRY).expect(200);
      await send(app, '/impact/inquiries', 'query', {
        ...INQUIRY,
        ResolutionStatus: 'APPROVED',
        FinalPayout: '2.50',
      }).expect(200);
      const first = events.inquiry[0];
      expect(previous).to.deep.equal([
        null,
        {
          state: 'created',
          resolutionStatus: 'UNRESOLVED',
          expectedPayout: '3.00',
          finalPayout: null,
          currency: 'USD',
          key: first?.meta.key,
          receivedAt: first?.meta.receivedAt,
        },
      ]);
    });
  });
});
