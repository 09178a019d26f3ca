import { consoleUrl, html, type Html } from '../html';
import type { PageContext } from '../context';

const PAGES = [
  ['/', 'Overview'],
  ['/postbacks', 'Postbacks'],
  ['/refused', 'Refused'],
  ['/inbox', 'Inbox'],
  ['/reconcile', 'Reconcile'],
] as const;

/** A whole page: the navigation, the title and the body. No script: the page reads fully without one. */
export function layout(context: PageContext, current: string, title: string, body: Html, heading?: Html): Html {
  const links = PAGES.filter(([path]) => {
    if (path === '/inbox') return context.postbacks.inbox !== null;
    if (path === '/reconcile') return context.canReconcile;
    return true;
  }).map(
    ([path, name]) =>
      html`<a href="${consoleUrl(context.base, path)}" ${path === current ? html` aria-current="page"` : ''}
        >${name}</a
      >`,
  );
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · impact.com postbacks</title>
        <link rel="stylesheet" href="${consoleUrl(context.base, '/assets/console.css')}" />
      </head>
      <body>
        <header>
          <strong>impact.com postbacks</strong>
          <nav>${links}</nav>
          ${context.readOnly ? html`<span class="badge">read only</span>` : ''}
        </header>
        <main>
          <h1>${heading ?? title}</h1>
          ${body}
        </main>
      </body>
    </html>`;
}

/** What a page shows when the router keeps no history. */
export function historyOff(): Html {
  return html`<p class="notice">
    History is off, so there is nothing to show here. Turn it on with
    <code>createPostbackRouter({ history: true })</code>.
  </p>`;
}

export function time(date: Date | null): Html {
  if (date === null) return html`<span class="none">none</span>`;
  return html`<time datetime="${date.toISOString()}">${date.toISOString().replace('T', ' ').slice(0, 19)} UTC</time>`;
}

/** A hidden field with the CSRF token, for every form that changes something. */
export function csrfField(context: PageContext): Html {
  return html`<input type="hidden" name="csrf" value="${context.csrfToken}" />`;
}
