import { PostgresStore } from '../stores/postgres/postgres-store';
import { SqliteStore } from '../stores/sqlite/sqlite-store';

/** Where a command finds a router's store: PostgresStore's database or SqliteStore's file. */
export interface StoreArguments {
  readonly databaseUrl: string | undefined;
  readonly sqlite: string | undefined;
  readonly schema: string | undefined;
  readonly tablePrefix: string | undefined;
}

/** A mistake in the command line: exit code 2. */
export class StoreUsageError extends Error {}

/**
 * The store the arguments name, and how to let it go; a usage error unless exactly one is named.
 * It creates nothing: a command that inspects a store must not make one where a typo points.
 */
export function openStore(args: StoreArguments): { store: SqliteStore | PostgresStore; close: () => Promise<void> } {
  if ((args.databaseUrl === undefined) === (args.sqlite === undefined)) {
    throw new StoreUsageError(
      'give the store as --database-url <url> (or DATABASE_URL) or --sqlite <file>, one of them',
    );
  }
  if (args.sqlite !== undefined) {
    const store = new SqliteStore({ path: args.sqlite, create: false });
    return {
      store,
      close: () => {
        store.close();
        return Promise.resolve();
      },
    };
  }
  let store: PostgresStore;
  try {
    store = new PostgresStore({
      connectionString: args.databaseUrl ?? '',
      create: false,
      ...(args.schema === undefined ? {} : { schema: args.schema }),
      ...(args.tablePrefix === undefined ? {} : { tablePrefix: args.tablePrefix }),
    });
  } catch (error) {
    throw new StoreUsageError(asFlags((error as Error).message));
  }
  return { store, close: () => store.close() };
}

/** A setup error's message as a command line says it: "option tablePrefix ..." as "--table-prefix ...". */
export function asFlags(message: string): string {
  return message.replace(
    /^option (\w+)/,
    (_, name: string) => `--${name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`,
  );
}
