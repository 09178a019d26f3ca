/**
 * Remembers a pure function's answers by string key, for values that repeat on every postback
 * (a sender's address, its Content-Type). Emptied when full, so a sender that invents keys only
 * costs the computation, never memory. A computation that throws is not remembered.
 */
export function boundedMemo<T>(limit: number, compute: (key: string) => T): (key: string) => T {
  const answers = new Map<string, T>();
  return (key) => {
    let answer = answers.get(key);
    if (answer === undefined) {
      answer = compute(key);
      if (answers.size >= limit) answers.clear();
      answers.set(key, answer);
    }
    return answer;
  };
}
