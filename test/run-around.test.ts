import { expect } from 'chai';
import { runAround } from '../lib/delivery/run-around';

describe('runAround (a wrapper that must change nothing, as a context manager around a delivery)', () => {
  function counted(result: string): { work: () => string; runs: () => number } {
    let runs = 0;
    return {
      work: () => {
        runs += 1;
        return result;
      },
      runs: () => runs,
    };
  }

  it("runs the work through the wrapper and gives back the work's result, not the wrapper's", () => {
    const { work, runs } = counted('delivered');
    const failures: unknown[] = [];
    const seen: string[] = [];
    const result = runAround(
      (run) => {
        seen.push('around');
        run();
        return 'the wrapper';
      },
      work,
      (error) => failures.push(error),
    );
    expect([result, runs(), seen, failures]).to.deep.equal(['delivered', 1, ['around'], []]);
  });

  it('runs the work itself, once, when the wrapper throws before running it', () => {
    const { work, runs } = counted('delivered');
    const failures: unknown[] = [];
    const broke = new Error('broke before');
    const result = runAround(
      () => {
        throw broke;
      },
      work,
      (error) => failures.push(error),
    );
    expect([result, runs(), failures]).to.deep.equal(['delivered', 1, [broke]]);
  });

  it('gives back the result, the work run once, when the wrapper throws after running it', () => {
    const { work, runs } = counted('delivered');
    const failures: unknown[] = [];
    const broke = new Error('broke after');
    const result = runAround(
      (run) => {
        run();
        throw broke;
      },
      work,
      (error) => failures.push(error),
    );
    expect([result, runs(), failures]).to.deep.equal(['delivered', 1, [broke]]);
  });

  it('runs the work itself when the wrapper never calls it', () => {
    const { work, runs } = counted('delivered');
    const failures: unknown[] = [];
    const result = runAround(
      () => undefined,
      work,
      (error) => failures.push(error),
    );
    expect([result, runs(), failures.map((error) => (error as Error).message)]).to.deep.equal([
      'delivered',
      1,
      ['the wrapper did not run the work'],
    ]);
  });

  it("lets the work's own throw through, whether the wrapper passes it on, swallows it or throws another", () => {
    const failed = new Error('listener failed');
    const work = (): string => {
      throw failed;
    };
    const passing = (run: () => string): string => run();
    const swallowing = (run: () => string): void => {
      try {
        run();
      } catch {
        // a wrapper that eats the error
      }
    };
    const replacing = (run: () => string): void => {
      try {
        run();
      } catch {
        throw new Error('the wrapper broke too');
      }
    };
    for (const wrapper of [passing, swallowing, replacing]) {
      const failures: unknown[] = [];
      expect(() => runAround(wrapper, work, (error) => failures.push(error))).to.throw(failed);
      expect(failures.map((error) => (error as Error).message)).to.deep.equal(
        wrapper === replacing ? ['the wrapper broke too'] : [],
      );
    }
  });
});
