import type { Kind } from './templates';

/** One postback a scenario sends, with the fields impact.com would fill in. */
export interface ScenarioStep {
  readonly name: string;
  readonly kind: Kind;
  readonly fields: Readonly<Record<string, string>>;
}

export const SCENARIOS = ['tracked', 'lifecycle', 'cleared', 'inquiry', 'catalog', 'retry', 'all'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

function isoNow(offsetMinutes = 0): string {
  return new Date(Date.now() + offsetMinutes * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A realistic action as impact.com's action lifecycle template would fill it. */
function action(actionId: string, user: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    CampaignId: '10306',
    CampaignName: 'ACME Outdoor',
    ActionTrackerId: '55555',
    ActionTrackerName: 'Online Sale',
    MediaPartnerId: '123456',
    MediaPartnerName: 'Example Cashback',
    ActionType: 'SALE',
    ReferringType: 'CLICK_COOKIE',
    ActionId: actionId,
    Status: 'PENDING',
    StatusDetail: 'IR_BLANK',
    AdId: '1000000',
    Payout: '12.50',
    DeltaPayout: '12.50',
    Amount: '250.00',
    DeltaAmount: '250.00',
    Currency: 'USD',
    EventDate: isoNow(-30),
    CreationDate: isoNow(-29),
    LockingDate: isoNow(60 * 24 * 30),
    SubId1: user,
    SharedId: `session-${actionId}`,
    Oid: `ORD-${actionId.split('.').pop() ?? actionId}`,
    ...overrides,
  };
}

/**
 * The postbacks of a scenario. Ids are fresh on every run (from `seed`), so running a scenario
 * twice sends new actions, as impact.com would.
 */
export function scenarioSteps(name: ScenarioName, seed: string): ScenarioStep[] {
  const id = (n: number) => `8882.${seed}.${n}`;
  switch (name) {
    case 'tracked':
      return [{ name: 'tracked', kind: 'action', fields: action(id(1), 'alice') }];
    case 'lifecycle':
      return [
        {
          name: 'tracked',
          kind: 'action',
          fields: action(id(2), 'bob', {
            Payout: '20.00',
            DeltaPayout: '20.00',
            Amount: '400.00',
            DeltaAmount: '400.00',
          }),
        },
        {
          name: 'modified',
          kind: 'action',
          fields: action(id(2), 'bob', {
            Payout: '15.00',
            DeltaPayout: '-5.00',
            Amount: '300.00',
            DeltaAmount: '-100.00',
            StatusDetail: 'ITEM_RETURNED',
          }),
        },
        {
          name: 'reversed',
          kind: 'action',
          fields: action(id(2), 'bob', {
            Status: 'REVERSED',
            Payout: '0.00',
            DeltaPayout: '-15.00',
            Amount: '0.00',
            DeltaAmount: '-300.00',
            StatusDetail: 'ORDER_UPDATE',
          }),
        },
      ];
    case 'cleared':
      return [
        { name: 'tracked', kind: 'action', fields: action(id(3), 'carol', { Payout: '8.00', DeltaPayout: '8.00' }) },
        {
          name: 'cleared',
          kind: 'clearing',
          fields: action(id(3), 'carol', {
            Status: 'APPROVED',
            Payout: '8.00',
            DeltaPayout: '0.00',
            ClearedDate: isoNow(),
          }),
        },
      ];
    case 'inquiry': {
      const inquiry = {
        InquiryId: `44${seed.slice(-6)}`,
        MediaPartnerInquiryId: `mine-${seed}`,
        CampaignId: '10306',
        CampaignName: 'ACME Outdoor',
        OrderId: `ORD-INQ-${seed}`,
        CustomerId: 'dave',
        InquiryType: 'UNTRACKED',
        TransactionAmount: '59.90',
        ExpectedPayout: '3.00',
        Currency: 'USD',
        TransactionDate: isoNow(-60 * 24 * 10),
        InquiryDate: isoNow(-60),
      };
      return [
        { name: 'created', kind: 'inquiry', fields: { ...inquiry, ResolutionStatus: 'UNRESOLVED' } },
        {
          name: 'resolved',
          kind: 'inquiry',
          fields: { ...inquiry, ResolutionStatus: 'VALID', FinalPayout: '3.00', ResolutionDate: isoNow() },
        },
      ];
    }
    case 'catalog':
      return [
        {
          name: 'changed',
          kind: 'catalog',
          fields: { CampaignId: '10306', CatalogId: '777', Sku: 'APP-0016', StockAvailability: 'OutOfStock' },
        },
      ];
    case 'retry': {
      const step: ScenarioStep = {
        name: 'retry',
        kind: 'action',
        fields: action(id(4), 'alice', { Payout: '5.00', DeltaPayout: '5.00' }),
      };
      return [step, step, step];
    }
    case 'all':
      return (['tracked', 'lifecycle', 'cleared', 'inquiry', 'catalog', 'retry'] as const).flatMap((scenario) =>
        scenarioSteps(scenario, seed).map((step) => ({ ...step, name: `${scenario}:${step.name}` })),
      );
  }
}
