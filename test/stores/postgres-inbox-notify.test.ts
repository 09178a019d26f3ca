import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { PostgresStore } from '../../lib';
import { DATABASE_URL, useTestSchema } from '../helpers/services';

describe("PostgresStore's inbox: other instances hear of new rows", function () {
  this.timeout(20_000);
  const stores: PostgresStore[] = [];
  // Before the schema's own hooks: its stores close before it is dropped.
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
  });
  const schema = useTestSchema();

  it('a worker waiting in another instance wakes within milliseconds of an arrival, long before its poll', async () => {
    const open = (): PostgresStore => {
      const store = new PostgresStore({ connectionString: DATABASE_URL, schema: schema().name });
      stores.push(store);
      return store;
    };
    const [arriving, waiting] = [open(), open()];
    // The waiting instance listens first (its first wait opens the connection), then waits long.
    await waiting.inbox.waitForWork(50);
    const woken: number[] = [];
    for (let round = 0; round < 3; round += 1) {
      const started = Date.now();
      const wait = waiting.inbox.waitForWork(10_000).then(() => Date.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const stored = await arriving.inbox.add({
        key: `actions:${randomUUID()}`,
        subject: `action:${randomUUID()}`,
        route: 'actions',
        format: 'query',
        ip: '127.0.0.1',
        path: '/impact/actions',
        receivedAt: new Date(),
        fields: '{"ActionId":"1"}',
      });
      expect(stored).to.equal('stored');
      woken.push((await wait) - 50);
    }
    console.log(`      woken ${woken.join(', ')} ms after the arrival`);
    for (const ms of woken) expect(ms).to.be.below(1000);
  });
});
