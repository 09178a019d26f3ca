import type { PostbackRouter } from '../create-postback-router';
import type { ReconcileReport } from '../reconcile/reconcile';

/** The account a console may reconcile with (`createPostbackConsole`'s option `reconcile`). */
export interface ConsoleReconcileAccount {
  readonly accountSid: string;
  readonly authToken: string;
  /** impact.com's API; default `https://api.impact.com`. */
  readonly baseUrl?: string;
}

/** A reconciliation the console ran, for the Overview and Reconcile pages. */
export interface ConsoleReconcileRun {
  readonly at: Date;
  readonly since: Date;
  readonly until: Date;
  readonly report: ReconcileReport | null;
  readonly error: string | null;
}

/** What a page is rendered with. */
export interface PageContext {
  /** Where the console is mounted, for links: '' at the root. */
  readonly base: string;
  readonly postbacks: PostbackRouter<unknown>;
  readonly readOnly: boolean;
  readonly csrfToken: string;
  readonly query: URLSearchParams;
  readonly canReconcile: boolean;
  readonly lastReconcile: ConsoleReconcileRun | null;
}
