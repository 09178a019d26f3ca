import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';
import { expect } from 'chai';
import request from 'supertest';
import { createApp, errorCode, type TestApp } from '../helpers/create-app';
import { sendBytes } from '../helpers/send';
import { rawExchange, startServer, statusOf, type RunningServer } from '../helpers/server';
import { HOST } from '../helpers/hosts';
import { expectNoEmit } from './helpers';

const JSON_HEAD = 'POST /impact/actions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n';

describe('hostile B: transport limits and HTTP edge cases', () => {
  let target: TestApp;
  let running: RunningServer;

  beforeEach(async () => {
    target = createApp({ limit: '16kb' });
    running = await startServer(target.app);
  });
  afterEach(async () => {
    await running.close();
  });

  it('B10: a declared Content-Length one byte over the limit gets 413 before the body is sent', async () => {
    const response = await rawExchange(running.port, [`${JSON_HEAD}Content-Length: ${16 * 1024 + 1}\r\n\r\n`]);
    expect(statusOf(response)).to.equal(413);
    expect(response).to.include('body.too_large');
    expectNoEmit(target.events);
  });

  it('B11: a chunked body growing past the limit gets 413; the rest is drained, not kept', async () => {
    const chunk = 'x'.repeat(4096);
    const chunks = [`${JSON_HEAD}Transfer-Encoding: chunked\r\n\r\n`, '1\r\n{\r\n'];
    for (let i = 0; i < 64; i += 1) chunks.push(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    chunks.push('0\r\n\r\n');
    const response = await rawExchange(running.port, chunks);
    expect(statusOf(response)).to.equal(413);
    expectNoEmit(target.events);
  });

  it('B12: a gzip bomb gets 413 once the inflated bytes pass the limit, and memory stays flat', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(100 * 1024 * 1024, 0x20));
    expect(bomb.length).to.be.below(200 * 1024);
    const before = process.memoryUsage().rss;
    const res = await sendBytes(running.base, '/impact/actions', 'application/json', bomb)
      .set('Content-Encoding', 'gzip')
      .expect(413);
    expect(errorCode(res.text)).to.equal('body.too_large');
    expect(process.memoryUsage().rss - before).to.be.below(20 * 1024 * 1024);
    expectNoEmit(target.events);
  });

  for (const encoding of ['compress', 'x-foo']) {
    it(`B13: Content-Encoding ${encoding} gets 415`, async () => {
      const res = await request(running.base)
        .post('/impact/actions')
        .set('Content-Type', 'application/json')
        .set('Content-Encoding', encoding)
        .send('{"ActionId":"1"}')
        .expect(415);
      expect(errorCode(res.text)).to.equal('content_encoding.unsupported');
      expectNoEmit(target.events);
    });
  }

  it('B14: a body shorter than its Content-Length, then a closed connection, emits nothing', async () => {
    await rawExchange(running.port, [`${JSON_HEAD}Content-Length: 100\r\n\r\n{"ActionId":"1"`], {
      destroyAfterWrite: true,
    });
    await sleep(100);
    expectNoEmit(target.events);
    expect(target.events.error).to.deep.equal([]);
  });

  describe('B15: request smuggling shapes are refused by Node before the router runs', () => {
    const shapes = [
      ['CL and TE together', `${JSON_HEAD}Content-Length: 16\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
      ['two different Content-Lengths', `${JSON_HEAD}Content-Length: 16\r\nContent-Length: 17\r\n\r\n{"ActionId":"1"}`],
      ['an obs-folded header', `${JSON_HEAD}X-Folded: a\r\n b\r\nContent-Length: 16\r\n\r\n{"ActionId":"1"}`],
      ['bare LF line endings', 'POST /impact/actions HTTP/1.1\nHost: x\nContent-Length: 16\n\n{"ActionId":"1"}'],
    ] as const;
    for (const [name, bytes] of shapes) {
      it(name, async () => {
        const response = await rawExchange(running.port, [bytes]);
        expect(statusOf(response)).to.equal(400);
        expectNoEmit(target.events);
        expect(target.events.rejected).to.deep.equal([]);
      });
    }
  });

  it('B16: a request line over 16 KB gets 431 from Node', async () => {
    const res = await request(running.base).get(`/impact/actions?ActionId=1&Pad=${'x'.repeat(17 * 1024)}`);
    expect(res.status).to.equal(431);
    expectNoEmit(target.events);
  });

  it('B16: more query parameters than maxFields get 400, never a silent cut', async () => {
    const query = Array.from({ length: 150 }, (_, index) => `k${index}=v`).join('&');
    const res = await request(running.base).get(`/impact/actions?ActionId=1&${query}`).expect(400);
    expect(errorCode(res.text)).to.equal('fields.too_many');
    expectNoEmit(target.events);
  });

  it('B19: a client that leaves before the answer gets its postback handled once, and its retry is a duplicate', async () => {
    const slow = createApp({}, { listen: false });
    let calls = 0;
    slow.postbacks.on('action', async () => {
      calls += 1;
      await sleep(100);
    });
    const server = await startServer(slow.app);
    try {
      const body = '{"ActionId":"19"}';
      await rawExchange(server.port, [`${JSON_HEAD}Content-Length: ${body.length}\r\n\r\n${body}`], {
        destroyAfterWrite: true,
      });
      await sleep(200);
      await request(server.base).post('/impact/actions').send(body).set('Content-Type', 'application/json').expect(200);
      expect(calls).to.equal(1);
      expect(slow.events.duplicate).to.have.length(1);
    } finally {
      await server.close();
    }
  });

  const fetchHost = HOST === 'hono' || HOST === 'fetch';
  const twoContentTypes = async (): Promise<string> => {
    const body = '{"ActionId":"20"}';
    return rawExchange(running.port, [
      `POST /impact/actions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Type: application/xml\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    ]);
  };
  if (!fetchHost) {
    it('B20: with two Content-Type headers Node keeps the first, and only that parser runs', async () => {
      expect(statusOf(await twoContentTypes())).to.equal(200);
      expect(target.events.action.map((event) => event.meta.format)).to.deep.equal(['json']);
    });
  } else {
    it('B20: with two Content-Type headers a Fetch Request joins them, and no parser runs (415)', async () => {
      // The Fetch standard's Headers join a repeated header with ", ": one type cannot be told.
      const response = await twoContentTypes();
      expect(statusOf(response)).to.equal(415);
      expect(response).to.include('content_type.unsupported');
      expectNoEmit(target.events);
    });
  }

  describe('B21: charsets and bytes', () => {
    for (const type of [
      'application/json; charset=koi8-r',
      'application/x-www-form-urlencoded; charset=utf-16',
      'text/xml; charset=iso-8859-1',
    ]) {
      it(`refuses ${type} with 415`, async () => {
        const res = await request(running.base)
          .post('/impact/actions')
          .set('Content-Type', type)
          .send('ActionId=1')
          .expect(415);
        expect(errorCode(res.text)).to.equal('charset.unsupported');
        expectNoEmit(target.events);
      });
    }

    it('refuses invalid UTF-8 inside a field with 400, never accepting U+FFFD in an identifier', async () => {
      const form = Buffer.concat([Buffer.from('ActionId=1'), Buffer.from([0xc3, 0x28])]);
      const res = await sendBytes(running.base, '/impact/actions', 'application/x-www-form-urlencoded', form);
      expect(res.status).to.equal(400);
      const query = await request(running.base).get('/impact/actions?ActionId=1%C3%28').expect(400);
      expect(errorCode(query.text)).to.equal('field.invalid');
      expectNoEmit(target.events);
    });
  });
});
