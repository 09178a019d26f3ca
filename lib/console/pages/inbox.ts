import type { InboxStatus } from '../../stores/store';
import type { PageContext } from '../context';
import { consoleUrl, html, segment, senderText, type Html } from '../html';
import { csrfField, layout, time } from './layout';

const STATUSES: readonly InboxStatus[] = ['pending', 'retrying', 'dead', 'delivered'];

/** The inbox's rows by status, with their last error; retry one, or every dead row. */
export async function inboxPage(context: PageContext): Promise<Html> {
  const { inbox } = context.postbacks;
  if (inbox === null) {
    return layout(
      context,
      '/inbox',
      'Inbox',
      html`<p class="notice">This router delivers directly: it has no inbox.</p>`,
    );
  }
  const asked = context.query.get('status');
  const status = (STATUSES as readonly (string | null)[]).includes(asked) ? (asked as InboxStatus) : null;
  const [stats, rows] = await Promise.all([
    inbox.stats(),
    inbox.list({ ...(status === null ? {} : { status }), limit: 100 }),
  ]);
  const tabs = html`<nav class="tabs">
    <a href="${consoleUrl(context.base, '/inbox')}">all</a>${STATUSES.map(
      (name) =>
        html` <a
          href="${consoleUrl(context.base, '/inbox', { status: name })}"
          ${name === status ? html` aria-current="page"` : ''}
          >${name} (${stats[name]})</a
        >`,
    )}
  </nav>`;
  const retryDead =
    context.readOnly || stats.dead === 0
      ? ''
      : html`<form method="post" action="${consoleUrl(context.base, '/inbox/retry')}">
          ${csrfField(context)}<input type="hidden" name="target" value="dead" /><button type="submit">
            Retry every dead row (${stats.dead})
          </button>
        </form>`;
  const table =
    rows.length === 0
      ? html`<p>No rows.</p>`
      : html`<table class="entries">
          <thead>
            <tr>
              <th class="num">row</th>
              <th>status</th>
              <th class="num">attempts</th>
              <th>received</th>
              <th>next attempt</th>
              <th>action</th>
              <th>last error</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            ${rows.map((row) => {
              const actionId = row.event?.kind === 'action' ? row.event.actionId : null;
              const retry =
                context.readOnly || row.status === 'delivered' || row.status === 'pending'
                  ? ''
                  : html`<form method="post" action="${consoleUrl(context.base, '/inbox/retry')}">
                      ${csrfField(context)}<input type="hidden" name="target" value="${row.id}" /><button type="submit">
                        Retry
                      </button>
                    </form>`;
              return html`<tr>
                <td class="num">${row.id}</td>
                <td>${row.status}</td>
                <td class="num">${row.attempts}</td>
                <td>${time(row.receivedAt)}</td>
                <td>${row.status === 'pending' || row.status === 'retrying' ? time(row.nextAttemptAt) : ''}</td>
                <td>
                  ${actionId === null ? '' : html`<a href="${consoleUrl(context.base, `/actions/${segment(actionId)}`)}">${senderText(actionId)}</a>`}
                </td>
                <td>${senderText(row.lastError)}</td>
                <td>${retry}</td>
              </tr>`;
            })}
          </tbody>
        </table>`;
  return layout(context, '/inbox', 'Inbox', html`${tabs}${retryDead}${table}`);
}
