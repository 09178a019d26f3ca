import { ERROR_STATUS, type PostbackErrorCode } from '../../errors';
import type { PostbackRoute } from '../../events';
import type { HistoryOutcome, HistoryQuery } from '../../history/history-entry';
import { OUTCOMES } from '../chart';
import type { PageContext } from '../context';
import { consoleUrl, html, type Html } from '../html';
import { entryTable } from './entries';
import { historyOff, layout } from './layout';

const ROUTES: readonly PostbackRoute[] = ['actions', 'clearing', 'inquiries', 'catalog'];
const FILTERS = ['actionId', 'subId1', 'outcome', 'route', 'code', 'since', 'until'] as const;

/** A date the form gave (a date, or a date and time, taken as UTC); undefined when empty or unreadable. */
function dateOf(text: string | null): Date | undefined {
  if (text === null || text === '') return undefined;
  const date = new Date(/Z|[+-]\d\d:?\d\d$/.test(text) ? text : `${text}Z`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** The query a form asked for: unknown outcomes and routes, and unreadable dates, are left out. */
function queryOf(params: URLSearchParams): HistoryQuery {
  const text = (name: string): string | undefined => {
    const value = params.get(name)?.trim();
    return value === undefined || value === '' ? undefined : value.slice(0, 200);
  };
  const outcome = text('outcome');
  const route = text('route');
  const since = dateOf(params.get('since'));
  const until = dateOf(params.get('until'));
  const actionId = text('actionId');
  const subId1 = text('subId1');
  const code = text('code');
  const cursor = text('cursor');
  return {
    limit: 50,
    ...(actionId === undefined ? {} : { actionId }),
    ...(subId1 === undefined ? {} : { subId1 }),
    ...(outcome !== undefined && (OUTCOMES as readonly string[]).includes(outcome)
      ? { outcome: outcome as HistoryOutcome }
      : {}),
    ...(route !== undefined && (ROUTES as readonly string[]).includes(route) ? { route: route as PostbackRoute } : {}),
    ...(code !== undefined && Object.hasOwn(ERROR_STATUS, code) ? { code: code as PostbackErrorCode } : {}),
    ...(since === undefined ? {} : { since }),
    ...(until === undefined ? {} : { until }),
    ...(cursor !== undefined && /^\d{1,19}$/.test(cursor) ? { cursor } : {}),
  };
}

function select(name: string, options: readonly string[], chosen: string | null): Html {
  return html`<select name="${name}">
    <option value="">any</option>
    ${options.map((option) => html`<option${option === chosen ? html` selected` : ''}>${option}</option>`)}
  </select>`;
}

/** The history, filtered and paged, newest first. */
export async function postbacksPage(context: PageContext): Promise<Html> {
  const { history } = context.postbacks;
  if (history === null) return layout(context, '/postbacks', 'Postbacks', historyOff());
  const params = context.query;
  const value = (name: string): string => params.get(name) ?? '';
  const page = await history.list(queryOf(params));
  const kept = Object.fromEntries(FILTERS.map((name) => [name, params.get(name)]));
  const form = html`<form method="get" action="${consoleUrl(context.base, '/postbacks')}" class="filters">
    <label>action id <input name="actionId" value="${value('actionId')}" /></label>
    <label>subId1 <input name="subId1" value="${value('subId1')}" /></label>
    <label>outcome ${select('outcome', OUTCOMES, params.get('outcome'))}</label>
    <label>route ${select('route', ROUTES, params.get('route'))}</label>
    <label>code <input name="code" value="${value('code')}" size="14" /></label>
    <label>since (UTC) <input name="since" value="${value('since')}" placeholder="2026-12-01T00:00" /></label>
    <label>until (UTC) <input name="until" value="${value('until')}" placeholder="2026-12-02" /></label>
    <button type="submit">Search</button> <a href="${consoleUrl(context.base, '/postbacks')}">clear</a>
  </form>`;
  const older =
    page.cursor === null
      ? ''
      : html`<p>
          <a rel="next" href="${consoleUrl(context.base, '/postbacks', { ...kept, cursor: page.cursor })}"
            >Older entries →</a
          >
        </p>`;
  return layout(context, '/postbacks', 'Postbacks', html`${form}${entryTable(context.base, page.entries)}${older}`);
}
