/**
 * PostgresStore's tables and its claim function: the DDL that the store applies on first use
 * and that `impact-postbacks migrate` applies or prints.
 */

export interface PostgresNames {
  readonly schema: string;
  readonly tablePrefix: string;
}

/** Every object the store uses, quoted and schema-qualified. */
export interface PostgresObjects {
  readonly keys: string;
  readonly journal: string;
  /** The claim function: lock the subject, insert the key, read the journal (one round trip). */
  readonly begin: string;
}

// Unquoted-identifier characters only, and short enough that the longest derived name
// (<prefix>journal_expires_at) stays within PostgreSQL's 63 bytes.
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const TABLE_PREFIX = /^[A-Za-z_][A-Za-z0-9_]{0,44}$/;

/** Raised when the DDL changes: a store finding an older version's function applies the DDL again. */
const VERSION = 1;

export function checkNames(schema: unknown, tablePrefix: unknown): PostgresNames {
  if (typeof schema !== 'string' || !SCHEMA_NAME.test(schema)) {
    throw new TypeError(
      `option schema must be a PostgreSQL name of letters, digits and _ (at most 63), got ${JSON.stringify(schema)}`,
    );
  }
  if (typeof tablePrefix !== 'string' || !TABLE_PREFIX.test(tablePrefix)) {
    throw new TypeError(
      `option tablePrefix must be letters, digits and _ (at most 45, not starting with a digit), got ${JSON.stringify(tablePrefix)}`,
    );
  }
  return { schema, tablePrefix };
}

export function objectsOf({ schema, tablePrefix }: PostgresNames): PostgresObjects {
  return {
    keys: `"${schema}"."${tablePrefix}keys"`,
    journal: `"${schema}"."${tablePrefix}journal"`,
    begin: `"${schema}"."${tablePrefix}begin_v${VERSION}"`,
  };
}

/** The name the store's advisory locks on subjects are hashed with, so other schemas' never meet. */
function lockNamespace({ schema, tablePrefix }: PostgresNames): string {
  return `impact-postbacks:${schema}.${tablePrefix}:`;
}

/** The whole DDL; every statement may run again harmlessly. */
export function schemaSql(names: PostgresNames): string {
  const { schema, tablePrefix } = names;
  const { keys, journal, begin } = objectsOf(names);
  return `-- impact-postbacks: dedupe keys, action journal and claim function (version ${VERSION})
${schema === 'public' ? '' : `CREATE SCHEMA IF NOT EXISTS "${schema}";\n`}
-- One row per handled postback, kept for the retention. A claim's row is inserted in the
-- transaction the listeners write in, so it commits with their writes or not at all.
CREATE TABLE IF NOT EXISTS ${keys} (
  key text PRIMARY KEY,
  handled_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS "${tablePrefix}keys_expires_at" ON ${keys} (expires_at);

-- The last state of each action ('action:<id>') and inquiry ('inquiry:<id>').
CREATE TABLE IF NOT EXISTS ${journal} (
  subject text PRIMARY KEY,
  state jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS "${tablePrefix}journal_expires_at" ON ${journal} (expires_at);

-- A claim in one round trip, inside the caller's READ COMMITTED transaction: waits (up to
-- lock_timeout_ms) for the subject's advisory lock, then inserts the key (waiting for an
-- uncommitted copy of it), then reads the subject's state. A VOLATILE function takes a new
-- snapshot per statement, so the read sees what the lock's last holder committed.
CREATE OR REPLACE FUNCTION ${begin}(p_key text, p_subject text, p_lock_timeout_ms integer, p_retention_ms bigint)
RETURNS TABLE (claimed boolean, previous jsonb)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_lock_timeout text := current_setting('lock_timeout');
  v_claimed boolean;
BEGIN
  PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
  IF p_subject IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(hashtextextended('${lockNamespace(names)}' || p_subject, 0));
  END IF;
  INSERT INTO ${keys} AS k (key, expires_at)
    VALUES (p_key, now() + p_retention_ms * interval '1 millisecond')
    ON CONFLICT (key) DO UPDATE SET handled_at = now(), expires_at = EXCLUDED.expires_at
    WHERE k.expires_at <= now();
  v_claimed := FOUND;
  -- The listeners' own statements keep the session's lock timeout.
  PERFORM set_config('lock_timeout', v_lock_timeout, true);
  IF NOT v_claimed THEN
    RETURN QUERY SELECT false, NULL::jsonb;
    RETURN;
  END IF;
  RETURN QUERY SELECT true, (SELECT j.state FROM ${journal} j WHERE j.subject = p_subject AND j.expires_at > now());
END
$$;
`;
}

/** Answers one row with `ready: true` when this version's objects all exist. */
export function schemaPresentSql(names: PostgresNames): string {
  const { keys, journal, begin } = objectsOf(names);
  const quote = (text: string): string => `'${text.replaceAll("'", "''")}'`;
  return `SELECT to_regclass(${quote(keys)}) IS NOT NULL AND to_regclass(${quote(journal)}) IS NOT NULL
    AND to_regprocedure(${quote(`${begin}(text, text, integer, bigint)`)}) IS NOT NULL AS ready`;
}

/**
 * A session lock that serialises concurrent migrations of one schema and prefix (CREATE ... IF
 * NOT EXISTS races otherwise); a connection that dies lets it go.
 */
export function migrationLockSql(names: PostgresNames): { readonly lock: string; readonly unlock: string } {
  const id = `hashtextextended('${lockNamespace(names)}migrate', 0)`;
  return { lock: `SELECT pg_advisory_lock(${id})`, unlock: `SELECT pg_advisory_unlock(${id})` };
}
