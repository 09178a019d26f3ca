import { createExampleApp } from './app';

const port = Number(process.env['PORT'] ?? 3000);
const allowedIps = process.env['IMPACT_ALLOWED_IPS']?.split(',').map((entry) => entry.trim());
const databaseUrl = process.env['DATABASE_URL'];

async function main(): Promise<void> {
  const example = await createExampleApp({
    ...(allowedIps === undefined ? {} : { allowedIps }),
    ...(databaseUrl === undefined || databaseUrl === '' ? {} : { databaseUrl }),
  });
  const server = example.app.listen(port, () => {
    console.log(
      `impact-postbacks example listening on http://localhost:${port} (${example.storage === 'postgres' ? 'PostgresStore, ledger in PostgreSQL' : 'in memory; set DATABASE_URL for PostgreSQL'})`,
    );
    console.log(
      `try: curl 'http://localhost:${port}/impact/actions?ActionId=1.2.3&Payout=5.00&Currency=USD&SubId1=alice'`,
    );
  });
  // Timeouts a postback receiver should set: see the README's "Server timeouts".
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
}

main().catch((error: unknown) => {
  console.error(`the example could not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
