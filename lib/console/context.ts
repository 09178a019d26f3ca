import type { PostbackRouter } from '../create-postback-router';
import type { ReconciliationRun } from '../reconcile/reconcile';

/** The account a console may reconcile with (`createPostbackConsole`'s option `reconcile`). */
export interface ConsoleReconcileAccount {
  readonly accountSid: string;
  readonly authToken: string;
  /** impact.com's API; default `https://api.impact.com`. */
  readonly baseUrl?: string;
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
  /** The router's last reconciliation, whoever ran it. */
  readonly lastReconcile: ReconciliationRun | null;
}
