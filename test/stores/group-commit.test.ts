import path from 'node:path';
import { expect } from 'chai';
import request from 'supertest';
import { SqliteStore } from '../../lib';
import { GroupCommit } from '../../lib/stores/sqlite/group-commit';
import { createApp, errorCode } from '../helpers/create-app';
import { loadOptionalModule } from '../../lib/stores/optional-module';
import { useTempDir } from '../helpers/temp-dir';

describe('group commit', () => {
  it('writes what callers submit in one turn of the event loop as one batch, results in order', async () => {
    const batches: number[][] = [];
    const group = new GroupCommit<number, number>((items) => {
      batches.push([...items]);
      return items.map((item) => item * 10);
    });
    const first = await Promise.all([1, 2, 3].map((item) => group.submit(item)));
    const second = await group.submit(4);
    expect(first).to.deep.equal([10, 20, 30]);
    expect(second).to.equal(40);
    expect(batches).to.deep.equal([[1, 2, 3], [4]]);
  });

  it('writes a full batch at once, and rejects every caller of a batch that fails', async () => {
    const batches: number[][] = [];
    const group = new GroupCommit<number, number>((items) => {
      batches.push([...items]);
      if (items.includes(3)) throw new Error('disk full');
      return items;
    }, 2);
    const results = await Promise.allSettled([1, 2, 3, 4, 5].map((item) => group.submit(item)));
    expect(batches).to.deep.equal([[1, 2], [3, 4], [5]]);
    expect(results.map((result) => result.status)).to.deep.equal([
      'fulfilled',
      'fulfilled',
      'rejected',
      'rejected',
      'fulfilled',
    ]);
  });

  describe("SqliteStore's inbox", () => {
    const dir = useTempDir('impact-group-');

    it('stores 40 postbacks arriving at once, and answers 503 to each postback of a group whose transaction fails', async () => {
      const file = path.join(dir(), 'inbox.db');
      const { app, postbacks, events } = createApp({ store: new SqliteStore({ path: file }), delivery: 'inbox' });
      const send = (id: string) => request(app).get(`/impact/actions?ActionId=${id}&Payout=1.00`);
      const answers = await Promise.all(Array.from({ length: 40 }, (_, id) => send(`1000.1.${id}`)));
      expect(answers.map((res) => res.status)).to.deep.equal(Array(40).fill(200));

      // Another connection takes the inbox's table away: the next group's transaction fails.
      const Sqlite = loadOptionalModule('better-sqlite3', 'test', 'better-sqlite3') as new (file: string) => {
        exec(sql: string): void;
        close(): void;
      };
      const other = new Sqlite(file);
      other.exec('ALTER TABLE postback_inbox RENAME TO postback_inbox_away');
      other.close();
      const failed = await Promise.all(Array.from({ length: 5 }, (_, id) => send(`1000.2.${id}`)));
      expect(failed.map((res) => [res.status, errorCode(res.text)])).to.deep.equal(
        Array(5).fill([503, 'store.failed']),
      );
      // Deliveries whose commit met the missing table are tried again until close() gives them up.
      await postbacks.close({ timeoutMs: 500 });
      expect(events.action.filter((event) => event.actionId.startsWith('1000.2.'))).to.have.length(0);
    });
  });
});
