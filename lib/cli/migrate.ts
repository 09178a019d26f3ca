import { loadOptionalModule } from '../stores/optional-module';
import { asFlags } from './open-store';
import { checkNames, historySchemaSql, objectList, schemaSql } from '../stores/postgres/postgres-schema';
import { applyHistorySchema, applySchema, type PgPool } from '../stores/postgres/postgres-store';

export interface MigrateOptions {
  readonly databaseUrl: string | undefined;
  readonly schema: string | undefined;
  readonly tablePrefix: string | undefined;
  readonly print: boolean;
}

/** A mistake in the command line: exit code 2. */
export class MigrateUsageError extends Error {}

/** How long one statement of the migration may take before it is given up, in ms. */
const STATEMENT_BOUND_MS = 30_000;

/**
 * `impact-postbacks migrate`: prints PostgresStore's DDL, or applies it unless this version's
 * tables and function are in place (the same check the store makes on its first claim).
 */
export async function migrate(options: MigrateOptions): Promise<number> {
  let names;
  try {
    names = checkNames(options.schema ?? 'public', options.tablePrefix ?? 'impact_postbacks_');
  } catch (error) {
    throw new MigrateUsageError(asFlags((error as Error).message));
  }
  if (options.print) {
    console.log(`${schemaSql(names)}\n${historySchemaSql(names)}`);
    return 0;
  }
  if (options.databaseUrl === undefined || options.databaseUrl === '') {
    throw new MigrateUsageError('--database-url is required (or set DATABASE_URL), or --print to print the DDL');
  }
  const pg = loadOptionalModule('pg', 'migrate', 'pg') as {
    Pool: new (config: Record<string, unknown>) => PgPool & { on(event: 'error', listener: () => void): unknown };
  };
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 1, connectionTimeoutMillis: 5000 });
  pool.on('error', () => undefined);
  try {
    const result = await applySchema(pool, names, STATEMENT_BOUND_MS);
    // The history table apart: a database migrated by an earlier version has the rest.
    const history = await applyHistorySchema(pool, names);
    console.log(
      `${result === 'created' || history === 'created' ? 'created' : 'already in place'} in ${objectList(names)}`,
    );
    return 0;
  } catch (error) {
    console.error(`impact-postbacks: migrate failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await pool.end().catch(() => undefined);
  }
}
