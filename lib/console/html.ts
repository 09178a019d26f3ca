/**
 * HTML built from templates whose every interpolated value is escaped unless it is markup made
 * here (Html): a sender's keys and values, an IP, an error message all pass through `html` as
 * text, in element content and in quoted attributes alike.
 */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ESCAPES[char] ?? char);
}

type Part = Html | string | number | boolean | null | undefined | readonly Part[];

function render(part: Part): string {
  if (part === null || part === undefined || part === false) return '';
  if (part instanceof Html) return part.text;
  if (Array.isArray(part)) return (part as readonly Part[]).map(render).join('');
  return escapeHtml(String(part));
}

/** A template of markup: strings as written, values escaped (arrays joined, null and false left out). */
export function html(strings: TemplateStringsArray, ...values: readonly Part[]): Html {
  let text = strings[0] ?? '';
  for (let index = 0; index < values.length; index += 1) {
    text += render(values[index]) + (strings[index + 1] ?? '');
  }
  return new Html(text);
}

// Characters that would be invisible or would reorder the text around them (bidirectional
// overrides, zero-width marks, controls): a sender could hide a value's true content with them.
const HIDDEN = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/gu;

/**
 * A value a sender controls, shown as text: each invisible or reordering character made visible
 * as its code point, and the whole isolated (`<bdi>`) so that it cannot reorder the page around it.
 */
export function senderText(value: string | null | undefined): Html {
  if (value === null || value === undefined) return html`<span class="none">none</span>`;
  const parts: Html[] = [];
  let last = 0;
  for (const match of value.matchAll(HIDDEN)) {
    const index = match.index;
    parts.push(html`${value.slice(last, index)}`);
    const code = match[0].codePointAt(0) ?? 0;
    parts.push(html`<span class="hidden-char">U+${code.toString(16).toUpperCase().padStart(4, '0')}</span>`);
    last = index + match[0].length;
  }
  parts.push(html`${value.slice(last)}`);
  return html`<bdi>${parts}</bdi>`;
}

/** Text with each lone surrogate replaced (U+FFFD): encodeURIComponent throws on one. */
function wellFormed(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

/**
 * A sender's value as one path segment: `/`, `..` and every other character percent-encoded, so
 * that a link made of it stays on the console's page it names.
 */
export function segment(value: string): string {
  return encodeURIComponent(wellFormed(value));
}

/**
 * A link's address below the console: `path` is the console's own (a constant, with sender
 * values passed through segment()), the query's values are encoded here. `html` escapes the result.
 */
export function consoleUrl(
  base: string,
  path: string,
  query: Readonly<Record<string, string | null | undefined>> = {},
): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== '') params.set(name, wellFormed(value));
  }
  const search = params.toString();
  return `${base}${path}${search === '' ? '' : `?${search}`}`;
}
