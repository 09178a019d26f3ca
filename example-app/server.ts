import { createExampleApp } from './app';

const port = Number(process.env['PORT'] ?? 3000);
const allowedIps = process.env['IMPACT_ALLOWED_IPS']?.split(',').map((entry) => entry.trim());
const databaseUrl = process.env['DATABASE_URL'];
/** The schema of the store's and the ledger's tables, with DATABASE_URL. Default `public`. */
const schema = process.env['DATABASE_SCHEMA'];
/** How long a shutdown waits for postbacks being handled, in ms. */
const SHUTDOWN_TIMEOUT_MS = 10_000;

async function main(): Promise<void> {
  const example = await createExampleApp({
    ...(allowedIps === undefined ? {} : { allowedIps }),
    ...(databaseUrl === undefined || databaseUrl === '' ? {} : { databaseUrl }),
    ...(schema === undefined || schema === '' ? {} : { schema }),
  });
  const server = example.app.listen(port, () => {
    const address = server.address();
    const bound = typeof address === 'object' && address !== null ? address.port : port;
    console.log(
      `impact-postbacks example listening on http://localhost:${bound} (${example.storage === 'postgres' ? 'PostgresStore, ledger in PostgreSQL' : 'in memory; set DATABASE_URL for PostgreSQL'})`,
    );
    console.log(
      `try: curl 'http://localhost:${bound}/impact/actions?ActionId=1.2.3&Payout=5.00&Currency=USD&SubId1=alice'`,
    );
  });
  // Timeouts a postback receiver should set: see the README's "Server timeouts".
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  // A deploy or Ctrl-C: stop taking connections, let postbacks being handled finish and get
  // their 2xx (new ones get 503, which impact.com retries), then close the store and exit 0.
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: shutting down`);
    server.close();
    server.closeIdleConnections();
    example.close(SHUTDOWN_TIMEOUT_MS).then(
      () => {
        server.closeAllConnections();
        console.log('stopped');
        process.exitCode = 0;
      },
      (error: unknown) => {
        console.error(`shutdown failed: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((error: unknown) => {
  console.error(`the example could not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
