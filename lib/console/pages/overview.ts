import type { HistoryCount } from '../../history/history-entry';
import { firstSlice, OUTCOMES, outcomeChart } from '../chart';
import type { PageContext } from '../context';
import { consoleUrl, html, type Html } from '../html';
import { refusalReason } from '../refusal-reasons';
import { historyOff, layout, time } from './layout';
import { reportTable } from './reconcile';

const DAY_MS = 86_400_000;
const SLICE_MS = 15 * 60_000;

function sum(counts: readonly HistoryCount[], keep: (count: HistoryCount) => boolean): number {
  return counts.reduce((total, count) => (keep(count) ? total + count.count : total), 0);
}

/** The last 24 hours: a chart by outcome, totals by route, refusals by code, the inbox, the last reconciliation. */
export async function overviewPage(context: PageContext): Promise<Html> {
  const { history, inbox } = context.postbacks;
  const parts: Html[] = [];
  if (history === null) {
    parts.push(historyOff());
  } else {
    const now = Date.now();
    const slices = DAY_MS / SLICE_MS;
    const { counts, partial } = await history.counts({
      since: new Date(firstSlice(now, SLICE_MS, slices)),
      sliceMs: SLICE_MS,
    });
    const routes = [...new Set(counts.map((count) => count.route))].sort();
    const codes = [...new Set(counts.filter((count) => count.outcome === 'rejected').map((count) => count.code))];
    parts.push(
      html`<section>
          <h2>Postbacks per 15 minutes, last 24 hours</h2>
          ${outcomeChart(counts, now, SLICE_MS, slices)}
          <p class="legend">${OUTCOMES.map((outcome) => html`<span class="key o-${outcome}"></span>${outcome} `)}</p>
          ${partial ? html`<p class="notice">Counted from the newest 50,000 entries only: this store cannot count on its own.</p>` : ''}
        </section>
        <section>
          <h2>By route and outcome</h2>
          <table>
            <thead>
              <tr>
                <th>route</th>
                ${OUTCOMES.map((outcome) => html`<th class="num">${outcome}</th>`)}
                <th class="num">all</th>
              </tr>
            </thead>
            <tbody>
              ${routes.map(
                (route) =>
                  html`<tr>
                    <td>${route}</td>
                    ${OUTCOMES.map(
                      (outcome) =>
                        html`<td class="num">
                          <a href="${consoleUrl(context.base, '/postbacks', { route, outcome })}"
                            >${sum(counts, (count) => count.route === route && count.outcome === outcome)}</a
                          >
                        </td>`,
                    )}
                    <td class="num">${sum(counts, (count) => count.route === route)}</td>
                  </tr>`,
              )}
              ${
                routes.length === 0
                  ? html`<tr>
                      <td colspan="8">No postbacks in the last 24 hours.</td>
                    </tr>`
                  : ''
              }
            </tbody>
          </table>
        </section>
        <section>
          <h2>Refused, by code</h2>
          <table>
            <thead>
              <tr>
                <th>code</th>
                <th class="num">count</th>
                <th>what it means</th>
              </tr>
            </thead>
            <tbody>
              ${codes.map(
                (code) =>
                  html`<tr>
                    <td><a href="${consoleUrl(context.base, '/refused')}#${code ?? 'none'}">${code ?? 'none'}</a></td>
                    <td class="num">${sum(counts, (count) => count.outcome === 'rejected' && count.code === code)}</td>
                    <td>${refusalReason(code).reason}</td>
                  </tr>`,
              )}
              ${
                codes.length === 0
                  ? html`<tr>
                      <td colspan="3">None refused in the last 24 hours.</td>
                    </tr>`
                  : ''
              }
            </tbody>
          </table>
        </section>`,
    );
  }
  if (inbox !== null) {
    const stats = await inbox.stats();
    parts.push(
      html`<section>
        <h2>Inbox</h2>
        <table>
          <tbody>
            <tr>
              <th>pending</th>
              <td class="num">${stats.pending}</td>
            </tr>
            <tr>
              <th>retrying</th>
              <td class="num">${stats.retrying}</td>
            </tr>
            <tr>
              <th>dead</th>
              <td class="num"><a href="${consoleUrl(context.base, '/inbox', { status: 'dead' })}">${stats.dead}</a></td>
            </tr>
            <tr>
              <th>delivered</th>
              <td class="num">${stats.delivered}</td>
            </tr>
            <tr>
              <th>oldest waiting</th>
              <td class="num">
                ${stats.oldestPendingAgeMs === null ? 'none' : `${Math.round(stats.oldestPendingAgeMs / 1000)} s`}
              </td>
            </tr>
          </tbody>
        </table>
      </section>`,
    );
  }
  const last = context.lastReconcile;
  parts.push(
    html`<section>
      <h2>Last reconciliation</h2>
      ${
        last === null
          ? html`<p>None since the process started.</p>`
          : html`<p>Run at ${time(last.at)} for ${time(last.since)} to ${time(last.until)}.</p>
              ${last.report === null ? html`<p class="error">It failed: ${last.error}</p>` : reportTable(last.report)}`
      }
    </section>`,
  );
  return layout(context, '/', 'Overview', html`${parts}`);
}
