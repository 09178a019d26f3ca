/**
 * The fields the router knows, per event kind, with impact.com's placeholder name for each.
 * Sources are in the spec (postbacks.md §2): action fields from impact's own Action Clearing
 * body template and the partner Action object; inquiry fields from the partner Action Inquiry
 * object, whose placeholder names are not published and are assumed to be the same names.
 */

/** How a field's text is checked and converted. */
export type FieldType =
  | 'id' // impact.com identifier such as 8882.1234.1234567
  | 'text' // single-line free text
  | 'note' // free text that may span lines
  | 'money' // exact decimal string
  | 'currency' // ISO 4217, upper-cased
  | 'date' // ISO 8601 with offset, becomes a Date
  | 'enum'; // upper-cased code such as APPROVED

export interface FieldSpec {
  /** camelCase name on the event. */
  readonly name: string;
  /** impact.com's placeholder, without braces. */
  readonly placeholder: string;
  readonly type: FieldType;
  /** Further keys impact.com or its data feeds use for the same field. */
  readonly aliases?: readonly string[];
}

export const ACTION_FIELDS = [
  // The action data feed and API call the action id `Id`.
  { name: 'actionId', placeholder: 'ActionId', type: 'id', aliases: ['Id'] },
  { name: 'campaignId', placeholder: 'CampaignId', type: 'id' },
  { name: 'campaignName', placeholder: 'CampaignName', type: 'text' },
  { name: 'actionTrackerId', placeholder: 'ActionTrackerId', type: 'id' },
  { name: 'actionTrackerName', placeholder: 'ActionTrackerName', type: 'text' },
  { name: 'mediaPartnerId', placeholder: 'MediaPartnerId', type: 'id' },
  { name: 'mediaPartnerName', placeholder: 'MediaPartnerName', type: 'text' },
  { name: 'actionType', placeholder: 'ActionType', type: 'text' },
  { name: 'referringType', placeholder: 'ReferringType', type: 'text' },
  // The data feed calls the status `State`.
  { name: 'status', placeholder: 'Status', type: 'enum', aliases: ['State'] },
  { name: 'statusDetail', placeholder: 'StatusDetail', type: 'text' },
  { name: 'adId', placeholder: 'AdId', type: 'id' },
  { name: 'payout', placeholder: 'Payout', type: 'money' },
  { name: 'deltaPayout', placeholder: 'DeltaPayout', type: 'money' },
  { name: 'intendedPayout', placeholder: 'IntendedPayout', type: 'money' },
  { name: 'amount', placeholder: 'Amount', type: 'money' },
  { name: 'deltaAmount', placeholder: 'DeltaAmount', type: 'money' },
  { name: 'intendedAmount', placeholder: 'IntendedAmount', type: 'money' },
  { name: 'originalAmount', placeholder: 'OriginalAmount', type: 'money' },
  { name: 'currency', placeholder: 'Currency', type: 'currency' },
  { name: 'originalCurrency', placeholder: 'OriginalCurrency', type: 'currency' },
  { name: 'eventDate', placeholder: 'EventDate', type: 'date' },
  { name: 'creationDate', placeholder: 'CreationDate', type: 'date' },
  { name: 'lockingDate', placeholder: 'LockingDate', type: 'date' },
  { name: 'clearedDate', placeholder: 'ClearedDate', type: 'date' },
  { name: 'subId1', placeholder: 'SubId1', type: 'text' },
  { name: 'subId2', placeholder: 'SubId2', type: 'text' },
  { name: 'subId3', placeholder: 'SubId3', type: 'text' },
  { name: 'sharedId', placeholder: 'SharedId', type: 'text' },
  { name: 'promoCode', placeholder: 'PromoCode', type: 'text' },
  { name: 'oid', placeholder: 'Oid', type: 'text' },
  { name: 'customerId', placeholder: 'CustomerId', type: 'text' },
] as const satisfies readonly FieldSpec[];

export const INQUIRY_FIELDS = [
  // The inquiry object calls its id `Id`.
  { name: 'inquiryId', placeholder: 'InquiryId', type: 'id', aliases: ['Id'] },
  { name: 'mediaPartnerInquiryId', placeholder: 'MediaPartnerInquiryId', type: 'text' },
  { name: 'campaignId', placeholder: 'CampaignId', type: 'id' },
  { name: 'campaignName', placeholder: 'CampaignName', type: 'text' },
  { name: 'actionId', placeholder: 'ActionId', type: 'id' },
  { name: 'orderId', placeholder: 'OrderId', type: 'text' },
  { name: 'customerId', placeholder: 'CustomerId', type: 'text' },
  { name: 'inquiryType', placeholder: 'InquiryType', type: 'enum' },
  { name: 'resolutionStatus', placeholder: 'ResolutionStatus', type: 'enum' },
  { name: 'rejectReason', placeholder: 'RejectReason', type: 'text' },
  { name: 'inquiryNotes', placeholder: 'InquiryNotes', type: 'note' },
  { name: 'transactionAmount', placeholder: 'TransactionAmount', type: 'money' },
  { name: 'expectedPayout', placeholder: 'ExpectedPayout', type: 'money' },
  { name: 'finalPayout', placeholder: 'FinalPayout', type: 'money' },
  { name: 'currency', placeholder: 'Currency', type: 'currency' },
  { name: 'transactionDate', placeholder: 'TransactionDate', type: 'date' },
  { name: 'inquiryDate', placeholder: 'InquiryDate', type: 'date' },
  { name: 'creationDate', placeholder: 'CreationDate', type: 'date' },
  { name: 'resolutionDate', placeholder: 'ResolutionDate', type: 'date' },
  { name: 'resolutionDeadlineDate', placeholder: 'ResolutionDeadlineDate', type: 'date' },
  { name: 'autoApprovalDate', placeholder: 'AutoApprovalDate', type: 'date' },
] as const satisfies readonly FieldSpec[];

// impact.com does not document product data change placeholders; these two are the ones a
// catalog notification is certain to need, the rest stays in `fields`.
export const CATALOG_FIELDS = [
  { name: 'campaignId', placeholder: 'CampaignId', type: 'id' },
  { name: 'catalogId', placeholder: 'CatalogId', type: 'id' },
] as const satisfies readonly FieldSpec[];

export type ActionFieldName = (typeof ACTION_FIELDS)[number]['name'];
export type InquiryFieldName = (typeof INQUIRY_FIELDS)[number]['name'];
export type CatalogFieldName = (typeof CATALOG_FIELDS)[number]['name'];
/** Every known field name: the targets the `fields` option may map a key to. */
export type KnownFieldName = ActionFieldName | InquiryFieldName | CatalogFieldName;

export const ALL_FIELD_NAMES: ReadonlySet<string> = new Set<string>(
  [...ACTION_FIELDS, ...INQUIRY_FIELDS, ...CATALOG_FIELDS].map((spec) => spec.name),
);
