import type { ReconcileReport } from '../../reconcile/reconcile';
import type { PageContext } from '../context';
import { consoleUrl, html, type Html } from '../html';
import { csrfField, layout, time } from './layout';

const ROWS: readonly [keyof ReconcileReport, string][] = [
  ['checked', 'actions impact.com listed'],
  ['missing', 'never seen here, delivered now'],
  ['changed', 'changed since we saw them, delivered now'],
  ['unchanged', 'as we have them'],
  ['stale', 'an older state than ours, left alone'],
  ['overtaken', 'changed by a postback meanwhile, left to the next run'],
  ['delivered', 'delivered to the listeners'],
  ['failed', 'whose delivery failed (tried again next run)'],
  ['pages', 'pages read'],
  ['requests', 'requests made'],
];

export function reportTable(report: ReconcileReport): Html {
  return html`<table class="report">
    <tbody>
      ${ROWS.map(
        ([name, words]) =>
          html`<tr>
            <th>${name}</th>
            <td class="num">${report[name]}</td>
            <td>${words}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/** A form to reconcile a date range, and the last run's report. */
export function reconcilePage(context: PageContext): Html {
  const last = context.lastReconcile;
  const today = new Date().toISOString().slice(0, 10);
  const weekAgo = new Date(Date.now() - 7 * 86_400_000).toISOString().slice(0, 10);
  const form = context.readOnly
    ? html`<p class="notice">This console is read only: it runs no reconciliation.</p>`
    : html`<form method="post" action="${consoleUrl(context.base, '/reconcile')}" class="filters">
          ${csrfField(context)}
          <label>from <input type="date" name="since" value="${weekAgo}" required /></label>
          <label>to (exclusive) <input type="date" name="until" value="${today}" required /></label>
          <button type="submit">Reconcile</button>
        </form>
        <p>
          Reads the actions impact.com updated in the range and delivers those missing or changed here, as postbacks
          would be.
        </p>`;
  return layout(
    context,
    '/reconcile',
    'Reconcile',
    html`${form}
      <h2>Last run</h2>
      ${
        last === null
          ? html`<p>None yet.</p>`
          : html`<p>At ${time(last.at)}, for ${time(last.since)} to ${time(last.until)}.</p>
              ${last.report === null ? html`<p class="error">It failed: ${last.error}</p>` : reportTable(last.report)}`
      }`,
  );
}
