import { createExampleApp } from './app';

const port = Number(process.env['PORT'] ?? 3000);
const allowedIps = process.env['IMPACT_ALLOWED_IPS']?.split(',').map((entry) => entry.trim());
const { app } = createExampleApp(allowedIps === undefined ? {} : { allowedIps });

const server = app.listen(port, () => {
  console.log(`impact-postbacks example listening on http://localhost:${port}`);
  console.log(
    `try: curl 'http://localhost:${port}/impact/actions?ActionId=1.2.3&Payout=5.00&Currency=USD&SubId1=alice'`,
  );
});
// Timeouts a postback receiver should set: see the README's "Server timeouts".
server.headersTimeout = 10_000;
server.requestTimeout = 30_000;
