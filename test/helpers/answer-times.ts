import http from 'node:http';

/**
 * GETs each path over the agent's keep-alive connections, `connections` requests at a time,
 * each sent as soon as the one before it on its connection was answered; gives every answer's
 * time in ms, in the order they came. Rejects on an answer other than 200.
 */
export async function timeAnswers(
  base: string,
  paths: readonly string[],
  connections: number,
  agent: http.Agent,
): Promise<number[]> {
  const times: number[] = [];
  const queue = [...paths];
  const one = (path: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const started = process.hrtime.bigint();
      http
        .get(`${base}${path}`, { agent }, (res) => {
          res.resume();
          res.on('end', () => {
            times.push(Number(process.hrtime.bigint() - started) / 1e6);
            if (res.statusCode === 200) resolve();
            else reject(new Error(`status ${res.statusCode}`));
          });
        })
        .on('error', reject);
    });
  await Promise.all(
    Array.from({ length: connections }, async () => {
      for (let path = queue.shift(); path !== undefined; path = queue.shift()) await one(path);
    }),
  );
  return times;
}

/** The value at a share of sorted values (0.99: the p99). */
export function percentile(sorted: readonly number[], share: number): number {
  return sorted[Math.ceil(sorted.length * share) - 1] ?? Infinity;
}
