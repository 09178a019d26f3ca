/** A realistic tracked action, keyed by impact.com's placeholder names. */
export const TRACKED_ACTION: Readonly<Record<string, string>> = {
  CampaignId: '10306',
  CampaignName: 'ACME Outdoor',
  ActionTrackerId: '55555',
  ActionTrackerName: 'Online Sale',
  MediaPartnerId: '123456',
  MediaPartnerName: 'Cashback & Co <EU>',
  ActionType: 'SALE',
  ReferringType: 'CLICK_COOKIE',
  ActionId: '8882.1234.1234567',
  Status: 'pending',
  StatusDetail: 'IR_BLANK',
  AdId: '1000000',
  Payout: '27.75',
  DeltaPayout: '0.00',
  IntendedPayout: '27.75',
  Amount: '1000.00',
  DeltaAmount: '0.00',
  IntendedAmount: '1000.00',
  Currency: 'usd',
  OriginalCurrency: 'EUR',
  OriginalAmount: '921.40',
  EventDate: '2024-09-10T10:42:38-07:00',
  CreationDate: '2024-09-10T10:43:01-07:00',
  LockingDate: '2024-09-26T00:00:00-07:00',
  SubId1: 'user-42',
  SubId2: '',
  SubId3: '{SubId3}',
  SharedId: 'shared/1?x=1&y=2',
  PromoCode: 'SPRING',
  Oid: 'ORD-77',
  CustomerId: 'c-9',
};

export const INQUIRY: Readonly<Record<string, string>> = {
  InquiryId: '4411',
  MediaPartnerInquiryId: 'mine-7',
  CampaignId: '10306',
  CampaignName: 'ACME Outdoor',
  ActionId: '8882.1234.1234567',
  OrderId: 'ORD-77',
  CustomerId: 'c-9',
  InquiryType: 'untracked',
  ResolutionStatus: 'UNRESOLVED',
  InquiryNotes: 'Bought on 3 May.\nReceipt attached.',
  TransactionAmount: '59.90',
  ExpectedPayout: '3.00',
  Currency: 'USD',
  TransactionDate: '2024-05-03T12:00:00Z',
  InquiryDate: '2024-05-20T08:30:00+02:00',
};

export const CATALOG: Readonly<Record<string, string>> = {
  CampaignId: '10306',
  CatalogId: '777',
  Sku: 'APP-0016',
  StockAvailability: 'OutOfStock',
};

export type Format = 'query' | 'json' | 'xml' | 'form';
export const FORMATS: readonly Format[] = ['query', 'json', 'xml', 'form'];

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function toQuery(fields: Readonly<Record<string, string>>): string {
  return new URLSearchParams(Object.entries(fields)).toString();
}

export function toXml(fields: Readonly<Record<string, string>>, root = 'Postback'): string {
  const children = Object.entries(fields)
    .map(([key, value]) => `  <${key}>${escapeXml(value)}</${key}>`)
    .join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root}>\n${children}\n</${root}>`;
}

/** The request for one postback in one format: method, path suffix, content type and body. */
export function encode(
  format: Format,
  fields: Readonly<Record<string, string>>,
): { method: 'GET' | 'POST'; query: string; contentType?: string; body?: string } {
  switch (format) {
    case 'query':
      return { method: 'GET', query: `?${toQuery(fields)}` };
    case 'json':
      return { method: 'POST', query: '', contentType: 'application/json', body: JSON.stringify(fields) };
    case 'xml':
      return { method: 'POST', query: '', contentType: 'application/xml', body: toXml(fields) };
    case 'form':
      return { method: 'POST', query: '', contentType: 'application/x-www-form-urlencoded', body: toQuery(fields) };
  }
}
