/**
 * PostgresStore's tables and functions: the DDL that the store applies on first use and that
 * `impact-postbacks migrate` applies or prints.
 */
import { createHash } from 'node:crypto';

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
  /** Postbacks stored for delivery: 'inbox'. */
  readonly inbox: string;
  /** Attempts begun per inbox row, each counted as it begins, outside its delivery's transaction. */
  readonly inboxAttempts: string;
  /** Stores a postback with its key and wakes the workers. */
  readonly inboxAdd: string;
  /** Takes the next row due, locks its subject and reads the journal. */
  readonly inboxNext: string;
  /** What happened to every postback (option `history` of the router). */
  readonly history: string;
  /** The LISTEN/NOTIFY channel by which workers learn of new rows. */
  readonly channel: string;
}

// Unquoted-identifier characters only, and short enough that the longest derived name
// (<prefix>journal_expires_at, <prefix>inbox_next_v5) stays within PostgreSQL's 63 bytes.
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const TABLE_PREFIX = /^[A-Za-z_][A-Za-z0-9_]{0,44}$/;

/** Raised when the DDL changes: a store finding an older version's function applies the DDL again. */
const VERSION = 5;

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
  // Channels are named per database, not per schema: a digest keeps other schemas' apart.
  const digest = createHash('sha256').update(`${schema}.${tablePrefix}`).digest('hex').slice(0, 16);
  return {
    keys: `"${schema}"."${tablePrefix}keys"`,
    journal: `"${schema}"."${tablePrefix}journal"`,
    begin: `"${schema}"."${tablePrefix}begin_v${VERSION}"`,
    inbox: `"${schema}"."${tablePrefix}inbox"`,
    inboxAttempts: `"${schema}"."${tablePrefix}inbox_attempts"`,
    inboxAdd: `"${schema}"."${tablePrefix}inbox_add_v${VERSION}"`,
    inboxNext: `"${schema}"."${tablePrefix}inbox_next_v${VERSION}"`,
    history: `"${schema}"."${tablePrefix}history"`,
    channel: `impact_postbacks_${digest}`,
  };
}

/** Every object the DDL makes, unquoted, for messages: what `migrate` made or found. */
export function objectList({ schema, tablePrefix }: PostgresNames): string {
  const tables = ['keys', 'journal', 'inbox', 'inbox_attempts', 'history'].map((name) => `${tablePrefix}${name}`);
  const indexes = [
    'keys_expires_at',
    'journal_expires_at',
    'inbox_waiting',
    'inbox_subject',
    'inbox_status',
    'inbox_subject_all',
    'history_action_id',
    'history_sub_id1',
    'history_outcome',
    'history_code',
    'history_received',
  ].map((name) => `${tablePrefix}${name}`);
  const functions = ['begin', 'inbox_add', 'inbox_next'].map((name) => `${tablePrefix}${name}_v${VERSION}`);
  return `schema ${schema}: tables ${tables.join(', ')}; indexes ${indexes.join(', ')}; functions ${functions.join(', ')}`;
}

/** The name the store's advisory locks on subjects are hashed with, so other schemas' never meet. */
function lockNamespace({ schema, tablePrefix }: PostgresNames): string {
  return `impact-postbacks:${schema}.${tablePrefix}:`;
}

/** The whole DDL; every statement may run again harmlessly. */
export function schemaSql(names: PostgresNames): string {
  const { schema, tablePrefix } = names;
  const { keys, journal, begin, inbox, inboxAttempts, inboxAdd, inboxNext } = objectsOf(names);
  return `-- impact-postbacks: dedupe keys, action journal, inbox and their functions (version ${VERSION})
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

-- Postbacks stored on arrival for delivery: 'inbox', delivered rows kept for the retention.
CREATE TABLE IF NOT EXISTS ${inbox} (
  id bigserial PRIMARY KEY,
  key text NOT NULL,
  subject text,
  route text NOT NULL,
  format text NOT NULL,
  ip text NOT NULL,
  path text NOT NULL,
  received_at timestamptz NOT NULL,
  fields json NOT NULL,
  status text NOT NULL DEFAULT 'pending',
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  outcome text
);
CREATE INDEX IF NOT EXISTS "${tablePrefix}inbox_waiting" ON ${inbox} (id) WHERE status IN ('pending', 'retrying');
CREATE INDEX IF NOT EXISTS "${tablePrefix}inbox_subject" ON ${inbox} (subject, id) WHERE status IN ('pending', 'retrying');
CREATE INDEX IF NOT EXISTS "${tablePrefix}inbox_status" ON ${inbox} (status, id);
-- Every row of a subject, delivered ones too: a retried row learns whether a later one of its
-- action was delivered already.
CREATE INDEX IF NOT EXISTS "${tablePrefix}inbox_subject_all" ON ${inbox} (subject, id);

-- Attempts begun per row: each counted as it begins, committed at once through another connection
-- than the delivery's, so that an attempt cut short (the process dies, its transaction ends
-- before its failure is recorded) still counts. The row's own attempts column counts those
-- whose end was recorded; a row has begun the greater of the two. (No foreign key: checking one
-- would wait for the lock the delivery holds on the row.)
CREATE TABLE IF NOT EXISTS ${inboxAttempts} (
  id bigint PRIMARY KEY,
  started integer NOT NULL
);

-- Arrival: the key and the row in one statement, or neither (a copy). It sends no NOTIFY: a
-- transaction that notifies takes a database-wide lock at commit, which made arrivals commit one
-- at a time; the store notifies separately, at most once every few milliseconds. Arrivals of one
-- subject take their ids one after the other (a lock of their own, not the one deliveries hold),
-- so that the order of ids is the order they commit and are answered in: the order delivered.
CREATE OR REPLACE FUNCTION ${inboxAdd}(p_key text, p_subject text, p_route text, p_format text, p_ip text,
  p_path text, p_received_at timestamptz, p_fields json, p_retention_ms bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_id bigint;
BEGIN
  IF p_subject IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(hashtextextended('${lockNamespace(names)}arrival:' || p_subject, 0));
  END IF;
  INSERT INTO ${keys} AS k (key, expires_at)
    VALUES (p_key, now() + p_retention_ms * interval '1 millisecond')
    ON CONFLICT (key) DO UPDATE SET handled_at = now(), expires_at = EXCLUDED.expires_at
    WHERE k.expires_at <= now();
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  INSERT INTO ${inbox} (key, subject, route, format, ip, path, received_at, fields)
    VALUES (p_key, p_subject, p_route, p_format, p_ip, p_path, p_received_at, p_fields)
    RETURNING id INTO v_id;
  RETURN v_id;
END
$$;

-- Delivery: the oldest row due whose subject has no earlier row waiting (a subject's postbacks
-- go in the order they arrived), skipping rows other workers hold; then the subject's advisory
-- lock and its journal state, as a claim takes them; the attempts it has begun; and whether a
-- later lifecycle postback of its action was delivered already (a row that died and was
-- retried: it must not move the action back).
CREATE OR REPLACE FUNCTION ${inboxNext}(p_lock_timeout_ms integer)
RETURNS TABLE (id bigint, key text, subject text, route text, format text, ip text, path text,
  received_at timestamptz, fields json, status text, attempts integer, last_error text,
  next_attempt_at timestamptz, previous jsonb, superseded boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_lock_timeout text := current_setting('lock_timeout');
  v ${inbox}%ROWTYPE;
BEGIN
  -- Planned on every call (EXECUTE), not once per connection: a plan made while the table was
  -- small scans it, and with thousands of rows waiting (a backlog, when the inbox matters most)
  -- each call then took seconds.
  EXECUTE $q$
    SELECT r.* FROM ${inbox} r
    WHERE r.status IN ('pending', 'retrying') AND r.next_attempt_at <= now()
      AND NOT EXISTS (
        SELECT 1 FROM ${inbox} e
        WHERE e.subject = r.subject AND e.id < r.id AND e.status IN ('pending', 'retrying'))
    ORDER BY r.id LIMIT 1
    FOR UPDATE OF r SKIP LOCKED$q$ INTO v;
  -- EXECUTE does not set FOUND.
  IF v.id IS NULL THEN
    RETURN;
  END IF;
  IF v.subject IS NOT NULL THEN
    PERFORM set_config('lock_timeout', p_lock_timeout_ms || 'ms', true);
    PERFORM pg_advisory_xact_lock(hashtextextended('${lockNamespace(names)}' || v.subject, 0));
    PERFORM set_config('lock_timeout', v_lock_timeout, true);
  END IF;
  RETURN QUERY SELECT v.id, v.key, v.subject, v.route, v.format, v.ip, v.path, v.received_at, v.fields,
    v.status, greatest(v.attempts, coalesce((SELECT a.started FROM ${inboxAttempts} a WHERE a.id = v.id), 0)),
    v.last_error, v.next_attempt_at,
    (SELECT j.state FROM ${journal} j WHERE j.subject = v.subject AND j.expires_at > now()),
    (v.route = 'actions' AND EXISTS (SELECT 1 FROM ${inbox} l WHERE l.subject = v.subject AND l.id > v.id
      AND l.route = 'actions' AND l.status = 'delivered'));
END
$$;
`;
}

/**
 * The history table and its indexes, apart from the store's own objects: a database without them
 * (one migrated by an earlier version, whose routers may not create tables) still takes
 * postbacks; only history fails until `migrate` makes them. Every statement may run again.
 */
export function historySchemaSql(names: PostgresNames): string {
  const { schema, tablePrefix } = names;
  const { history } = objectsOf(names);
  return `${schema === 'public' ? '' : `CREATE SCHEMA IF NOT EXISTS "${schema}";\n`}-- What happened to every postback, when the router's option history is on: written in batches,
-- outside the postbacks' transactions; searched newest first by each of these.
CREATE TABLE IF NOT EXISTS ${history} (
  id bigserial PRIMARY KEY,
  received_at timestamptz NOT NULL,
  trigger text NOT NULL,
  route text NOT NULL,
  format text,
  ip text,
  path text NOT NULL,
  outcome text NOT NULL,
  status integer,
  code text,
  duration_ms double precision NOT NULL,
  key text,
  subject text,
  action_id text,
  sub_id1 text,
  -- json, not jsonb: the fields as received, in their order; null where the text sent is kept.
  fields json,
  -- What the request sent, the token taken out: kept instead of the fields, parsed when read.
  sent_query text,
  sent_body text
);
-- A table made before the columns above.
ALTER TABLE ${history} ADD COLUMN IF NOT EXISTS sent_query text, ADD COLUMN IF NOT EXISTS sent_body text;
CREATE INDEX IF NOT EXISTS "${tablePrefix}history_action_id" ON ${history} (action_id, id) WHERE action_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS "${tablePrefix}history_sub_id1" ON ${history} (sub_id1, id) WHERE sub_id1 IS NOT NULL;
CREATE INDEX IF NOT EXISTS "${tablePrefix}history_outcome" ON ${history} (outcome, id);
CREATE INDEX IF NOT EXISTS "${tablePrefix}history_code" ON ${history} (code, id) WHERE code IS NOT NULL;
CREATE INDEX IF NOT EXISTS "${tablePrefix}history_received" ON ${history} (received_at);
`;
}

/**
 * Answers one row: `exists`, the history table is there; `current`, with every column this
 * version writes (a table an earlier version made is read as it is, and written once migrated);
 * `utf8`, the database stores any text a sender may send.
 */
export function historyPresentSql(names: PostgresNames): string {
  const table = objectsOf(names).history.replaceAll("'", "''");
  return `SELECT to_regclass('${table}') IS NOT NULL AS exists, EXISTS (SELECT 1 FROM pg_attribute
    WHERE attrelid = to_regclass('${table}') AND attname = 'sent_body' AND NOT attisdropped) AS current,
    current_setting('server_encoding') = 'UTF8' AS utf8`;
}

/** Answers one row with `ready: true` when this version's objects all exist. */
export function schemaPresentSql(names: PostgresNames): string {
  return `SELECT NOT EXISTS (${missingObjectsSql(names)}) AS ready`;
}

/** The store's tables and functions this schema lacks, one row each (none when all are there). */
export function missingObjectsSql(names: PostgresNames): string {
  const { keys, journal, begin, inbox, inboxAttempts, inboxAdd, inboxNext } = objectsOf(names);
  const quote = (text: string): string => `'${text.replaceAll("'", "''")}'`;
  const objects: readonly (readonly [string, string])[] = [
    [keys, `to_regclass(${quote(keys)})`],
    [journal, `to_regclass(${quote(journal)})`],
    [inbox, `to_regclass(${quote(inbox)})`],
    [inboxAttempts, `to_regclass(${quote(inboxAttempts)})`],
    [begin, `to_regprocedure(${quote(`${begin}(text, text, integer, bigint)`)})`],
    [
      inboxAdd,
      `to_regprocedure(${quote(`${inboxAdd}(text, text, text, text, text, text, timestamptz, json, bigint)`)})`,
    ],
    [inboxNext, `to_regprocedure(${quote(`${inboxNext}(integer)`)})`],
  ];
  const rows = objects.map(([name, found]) => `(${quote(name)}, ${found} IS NOT NULL)`).join(', ');
  return `SELECT name FROM (VALUES ${rows}) AS objects (name, present) WHERE NOT present`;
}

/**
 * A session lock that serialises concurrent migrations of one schema and prefix (CREATE ... IF
 * NOT EXISTS races otherwise); a connection that dies lets it go.
 */
export function migrationLockSql(names: PostgresNames): { readonly lock: string; readonly unlock: string } {
  const id = `hashtextextended('${lockNamespace(names)}migrate', 0)`;
  return { lock: `SELECT pg_advisory_lock(${id})`, unlock: `SELECT pg_advisory_unlock(${id})` };
}
