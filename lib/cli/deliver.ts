import { CONTENT_TYPES, encodeFields, routeUrl, type Kind, type TemplateFormat } from './templates';

export interface Delivery {
  readonly status: number;
  readonly ms: number;
  readonly body: string;
  readonly url: string;
  readonly method: 'GET' | 'POST';
  /** The receiver's X-Postback-Outcome: delivered, duplicate or stale (null if it sent none). */
  readonly outcome: string | null;
}

/** Sends one postback the way impact.com would: GET with a query string, or POST with a body. */
export async function deliverPostback(
  baseUrl: string,
  kind: Kind,
  format: TemplateFormat,
  fields: Readonly<Record<string, string>>,
  token: string | null,
): Promise<Delivery> {
  const pairs = Object.entries(fields);
  const tokenQuery = token === null ? '' : `token=${encodeURIComponent(token)}`;
  const started = performance.now();
  const method = format === 'query' ? 'GET' : 'POST';
  const url =
    format === 'query'
      ? routeUrl(
          baseUrl,
          kind,
          [tokenQuery, new URLSearchParams(pairs).toString()].filter((part) => part !== '').join('&'),
        )
      : routeUrl(baseUrl, kind, tokenQuery);
  const response = await fetch(url, {
    method,
    headers: { accept: 'application/json', ...(format === 'query' ? {} : { 'content-type': CONTENT_TYPES[format] }) },
    ...(format === 'query'
      ? {}
      : { body: format === 'form' ? new URLSearchParams(pairs).toString() : encodeFields(format, pairs) }),
    signal: AbortSignal.timeout(15_000),
  });
  const body = await response.text();
  return {
    status: response.status,
    ms: Math.round(performance.now() - started),
    body,
    url: url.replace(/token=[^&]*/, 'token=***'),
    method,
    outcome: response.headers.get('x-postback-outcome'),
  };
}

/** The error code from a JSON error answer, if there is one. */
export function errorCodeOf(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown } };
    return typeof parsed.error?.code === 'string' ? parsed.error.code : '';
  } catch {
    return '';
  }
}
