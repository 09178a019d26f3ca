import { expect } from 'chai';
import request from 'supertest';
import { PostgresStore } from '../../lib';
import { createApp } from '../helpers/create-app';
import { DATABASE_URL, useTestSchema } from '../helpers/services';

describe("PostgresStore's inbox with a backlog", function () {
  this.timeout(60_000);
  const schema = useTestSchema();

  it('delivers 2,000 waiting rows in seconds, with workers that started on an empty table', async () => {
    const store = new PostgresStore({ connectionString: DATABASE_URL, schema: schema().name });
    // Listeners wait at the gate while the backlog is sent, which takes more than the default 10 s
    // on a loaded machine: the timeout is above the test's own, so that none is given up and run again.
    const { app, postbacks } = createApp(
      { store, delivery: 'inbox', concurrency: 4, listenerTimeout: 90_000 },
      { listen: false },
    );
    // Listeners held until the backlog is in: the workers looked for rows while the table was empty.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let delivered = 0;
    postbacks.on('action', async () => {
      await gate;
      delivered += 1;
    });
    try {
      const total = 2000;
      for (let sent = 0; sent < total; sent += 100) {
        const answers = await Promise.all(
          Array.from({ length: 100 }, (_, index) =>
            request(app).get(`/impact/actions?ActionId=1000.1.${sent + index}&Payout=1.00`),
          ),
        );
        expect(answers.every((res) => res.status === 200)).to.equal(true);
      }
      const started = Date.now();
      open();
      while (delivered < total && Date.now() - started < 30_000)
        await new Promise((resolve) => setTimeout(resolve, 50));
      const seconds = (Date.now() - started) / 1000;
      console.log(`      ${delivered} of ${total} delivered in ${seconds.toFixed(1)} s`);
      expect(delivered).to.equal(total);
      expect(seconds).to.be.below(20);
    } finally {
      // Ends the workers' connections even when the rows did not all go, so the schema can be dropped.
      open();
      await postbacks.close({ timeoutMs: 1000 });
    }
  });
});
