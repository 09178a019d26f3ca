import type { ActionEvent, ActionState, DeliveryContext, InquiryEvent, InquiryState } from 'impact-postbacks';
import type { Pool, PoolClient } from 'pg';
import { creditCents, userOf, type InquiryRow, type Ledger, type UserBalance } from './ledger';

/**
 * The ledger in PostgreSQL: every entry is written through ctx.transaction, the transaction in
 * which PostgresStore records the postback. The entry and the record commit together or not at
 * all, so a crash at any moment, and impact.com's retry after it, credit each postback once.
 */
export class PostgresLedger implements Ledger<PoolClient> {
  constructor(
    private readonly pool: Pool,
    private readonly schema = 'public',
  ) {}

  /** Creates the example's two tables unless they exist. */
  async createTables(): Promise<void> {
    await this.pool.query(`
      CREATE TABLE IF NOT EXISTS "${this.schema}".example_ledger (
        id bigserial PRIMARY KEY,
        action_id text NOT NULL,
        user_id text NOT NULL,
        status text,
        credit_cents bigint NOT NULL,
        cleared boolean NOT NULL,
        postback_key text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE IF NOT EXISTS "${this.schema}".example_inquiries (
        inquiry_id text PRIMARY KEY,
        state text NOT NULL,
        resolution_status text NOT NULL,
        expected_payout text NOT NULL
      );
    `);
  }

  async applyAction(event: ActionEvent, ctx: DeliveryContext<ActionState, PoolClient>): Promise<void> {
    await ctx.transaction.query(
      `INSERT INTO "${this.schema}".example_ledger (action_id, user_id, status, credit_cents, cleared, postback_key)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [
        event.actionId,
        userOf(event),
        event.status ?? null,
        creditCents(event, ctx.previous),
        event.trigger === 'clearing',
        event.meta.key,
      ],
    );
  }

  async applyInquiry(event: InquiryEvent, ctx: DeliveryContext<InquiryState, PoolClient>): Promise<void> {
    await ctx.transaction.query(
      `INSERT INTO "${this.schema}".example_inquiries (inquiry_id, state, resolution_status, expected_payout)
       VALUES ($1, $2, $3, $4)
       ON CONFLICT (inquiry_id) DO UPDATE SET state = $2, resolution_status = $3, expected_payout = $4`,
      [event.inquiryId, event.state, event.resolutionStatus ?? '', event.expectedPayout ?? ''],
    );
  }

  async balances(): Promise<UserBalance[]> {
    // An action belongs to the user its first entry names; it is cleared once any entry says so.
    const { rows } = await this.pool.query<{ user: string; pending: string; cleared: string; actions: string }>(`
      WITH actions AS (
        SELECT (array_agg(user_id ORDER BY id))[1] AS user_id, sum(credit_cents) AS cents, bool_or(cleared) AS cleared
        FROM "${this.schema}".example_ledger GROUP BY action_id
      )
      SELECT user_id AS user,
        coalesce(sum(cents) FILTER (WHERE NOT cleared), 0) AS pending,
        coalesce(sum(cents) FILTER (WHERE cleared), 0) AS cleared,
        count(*) AS actions
      FROM actions GROUP BY user_id ORDER BY user_id`);
    return rows.map((row) => ({
      user: row.user,
      pendingCents: Number(row.pending),
      clearedCents: Number(row.cleared),
      actions: Number(row.actions),
    }));
  }

  async inquiries(): Promise<InquiryRow[]> {
    const { rows } = await this.pool.query<{
      inquiry_id: string;
      state: string;
      resolution_status: string;
      expected_payout: string;
    }>(`SELECT * FROM "${this.schema}".example_inquiries ORDER BY inquiry_id`);
    return rows.map((row) => ({
      inquiryId: row.inquiry_id,
      state: row.state,
      resolutionStatus: row.resolution_status,
      expectedPayout: row.expected_payout,
    }));
  }
}
