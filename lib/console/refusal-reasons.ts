import type { PostbackErrorCode } from '../errors';
import type { HistoryEntry } from '../history/history-entry';

/** What a refusal means and what to change, in words for a partner manager, not a developer. */
export interface RefusalReason {
  readonly reason: string;
  readonly fix: string;
}

const REASONS: Partial<Readonly<Record<PostbackErrorCode, RefusalReason>>> = {
  'ip.forbidden': {
    reason: 'The postback came from an address that is not on the list of impact.com addresses we accept.',
    fix: 'If impact.com added sending addresses, add them to allowedIps (postbacks.setAllowedIps needs no restart). Behind a proxy, set trustProxy. Otherwise someone else is sending: nothing to fix.',
  },
  'token.missing': {
    reason: 'The postback URL in impact.com carries no token, and we require one.',
    fix: 'Add ?token=… (or the X-Postback-Token header) to the postback URL in impact.com’s settings.',
  },
  'token.invalid': {
    reason: 'The postback carried a token that does not match ours.',
    fix: 'Copy the current token into the postback URL in impact.com’s settings; while rotating, list both tokens.',
  },
  'field.missing': {
    reason:
      'The action’s (or inquiry’s) id was empty, missing, or left as a placeholder such as {ActionId} that impact.com did not fill in.',
    fix: 'Check the postback template in impact.com: each value should be a placeholder impact.com knows, spelled exactly, in braces.',
  },
  'field.invalid': {
    reason: 'A field held a value of the wrong kind: a payout that is not an amount, a date that is not a date.',
    fix: 'Check the template in impact.com: the placeholder may be the wrong one for that key.',
  },
  'field.duplicate': {
    reason: 'The same field came twice with different values.',
    fix: 'Remove the repeated key from the postback template in impact.com.',
  },
  'fields.too_many': {
    reason: 'The postback carried more fields than we accept.',
    fix: 'Remove unused keys from the template, or raise maxFields.',
  },
  'body.invalid': {
    reason: 'The body could not be read as the format it claimed (JSON, XML or a form).',
    fix: 'Check the body template in impact.com and the content type chosen with it.',
  },
  'body.too_large': {
    reason: 'The body was larger than we accept.',
    fix: 'Trim the body template, or raise the limit option.',
  },
  'content_type.unsupported': {
    reason: 'The postback was sent in a format we do not read.',
    fix: 'Choose JSON, XML or a form for POST postbacks in impact.com, or use GET.',
  },
  'charset.unsupported': {
    reason: 'The body was in a character set other than UTF-8.',
    fix: 'Send UTF-8 (impact.com does by default).',
  },
  'content_encoding.unsupported': {
    reason: 'The body was compressed in a way we do not read.',
    fix: 'Send it uncompressed, or gzip/deflate/br.',
  },
  'request.aborted': {
    reason: 'The sender hung up before the body arrived.',
    fix: 'Nothing, usually: impact.com retries.',
  },
  'method.not_allowed': {
    reason: 'The request used a method other than GET or POST.',
    fix: 'Set the postback method to GET or POST in impact.com.',
  },
  'route.not_found': {
    reason: 'The request went to a path we do not serve.',
    fix: 'Postbacks go to /actions, /clearing, /inquiries or /catalog below the mount path.',
  },
};

const UNKNOWN: RefusalReason = {
  reason: 'The postback was refused.',
  fix: 'See docs/errors.md for this code.',
};

export function refusalReason(code: PostbackErrorCode | null): RefusalReason {
  return (code === null ? undefined : REASONS[code]) ?? UNKNOWN;
}

/** Keys whose value is still a placeholder in braces (`{Payout}`): a template impact.com did not fill in. */
export function unexpandedPlaceholders(entry: HistoryEntry): string[] {
  const found: string[] = [];
  for (const [key, value] of Object.entries(entry.fields ?? {})) {
    if (typeof value === 'string' && /^\{[^{}]*\}$/.test(value.trim())) found.push(`${key}=${value}`);
  }
  return found;
}
