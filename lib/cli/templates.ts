import { ACTION_FIELDS, CATALOG_FIELDS, INQUIRY_FIELDS, type FieldSpec } from '../fields/field-specs';

export const KINDS = ['action', 'clearing', 'inquiry', 'catalog'] as const;
export type Kind = (typeof KINDS)[number];
export const TEMPLATE_FORMATS = ['query', 'json', 'xml', 'form'] as const;
export type TemplateFormat = (typeof TEMPLATE_FORMATS)[number];

/** The route each impact.com event kind is configured to send to. */
export const KIND_ROUTES: Readonly<Record<Kind, string>> = {
  action: 'actions',
  clearing: 'clearing',
  inquiry: 'inquiries',
  catalog: 'catalog',
};

const KIND_LABELS: Readonly<Record<Kind, string>> = {
  action: 'Action Life Cycle Events',
  clearing: 'Action Clearing Events',
  inquiry: 'Action Inquiry Events',
  catalog: 'Product Data Change Events',
};

export const KIND_FIELDS: Readonly<Record<Kind, readonly FieldSpec[]>> = {
  action: ACTION_FIELDS,
  clearing: ACTION_FIELDS,
  inquiry: INQUIRY_FIELDS,
  catalog: CATALOG_FIELDS,
};

export const CONTENT_TYPES: Readonly<Record<Exclude<TemplateFormat, 'query'>, string>> = {
  json: 'application/json',
  xml: 'application/xml',
  form: 'application/x-www-form-urlencoded',
};

/** One thing to paste into impact.com's Event Notifications screen. */
export interface Template {
  readonly kind: Kind;
  readonly label: string;
  readonly format: TemplateFormat;
  readonly method: 'GET' | 'POST';
  readonly url: string;
  readonly contentType?: string;
  readonly body?: string;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Encodes fields in one format; used for templates (values are placeholders) and for sending. */
export function encodeFields(format: TemplateFormat, fields: readonly (readonly [string, string])[]): string {
  switch (format) {
    case 'query':
    case 'form':
      // Braces stay readable: impact.com substitutes `{ActionId}` only where it sees it literally.
      return fields
        .map(
          ([key, value]) =>
            `${encodeURIComponent(key)}=${encodeURIComponent(value).replace(/%7B/g, '{').replace(/%7D/g, '}')}`,
        )
        .join('&');
    case 'json':
      return `{\n${fields.map(([key, value]) => `  ${JSON.stringify(key)}: ${JSON.stringify(value)}`).join(',\n')}\n}`;
    case 'xml':
      return `<?xml version="1.0" encoding="UTF-8"?>\n<Postback>\n${fields.map(([key, value]) => `  <${key}>${escapeXml(value)}</${key}>`).join('\n')}\n</Postback>`;
  }
}

function joinUrl(base: string, route: string, query: string): string {
  const [path = '', fixedQuery] = base.split('?');
  const url = `${path.replace(/\/+$/, '')}/${route}`;
  const parts = [fixedQuery, query].filter((part): part is string => part !== undefined && part !== '');
  return parts.length === 0 ? url : `${url}?${parts.join('&')}`;
}

/**
 * The templates for one kind and format: every known placeholder of the kind, keyed by
 * impact.com's own placeholder name (which the router recognises), as valid JSON or XML.
 */
export function buildTemplate(
  baseUrl: string,
  kind: Kind,
  format: TemplateFormat,
  tokenParam: string | null,
): Template {
  const fields = KIND_FIELDS[kind].map((spec) => [spec.placeholder, `{${spec.placeholder}}`] as const);
  const token = tokenParam === null ? '' : `token=${encodeURIComponent(tokenParam)}`;
  const route = KIND_ROUTES[kind];
  if (format === 'query') {
    return {
      kind,
      label: KIND_LABELS[kind],
      format,
      method: 'GET',
      url: joinUrl(baseUrl, route, [token, encodeFields('query', fields)].filter((part) => part !== '').join('&')),
    };
  }
  return {
    kind,
    label: KIND_LABELS[kind],
    format,
    method: 'POST',
    url: joinUrl(baseUrl, route, token),
    contentType: CONTENT_TYPES[format],
    body: encodeFields(format, fields),
  };
}

export function routeUrl(baseUrl: string, kind: Kind, query: string): string {
  return joinUrl(baseUrl, KIND_ROUTES[kind], query);
}

export function formatTemplate(template: Template): string {
  const lines = [
    `# ${template.label} (${template.kind}), ${template.format}`,
    `Method: ${template.method}`,
    `URL: ${template.url}`,
  ];
  if (template.body !== undefined) {
    lines.push(
      `Body format: ${template.format.toUpperCase()} (Content-Type: ${template.contentType ?? ''})`,
      'Body:',
      template.body,
    );
  }
  return lines.join('\n');
}
