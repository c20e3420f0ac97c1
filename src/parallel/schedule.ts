/**
 * Micro-batch schedules for a pipeline of S stages, evaluated on measured times `t[m][s]` (micro-batch m on stage
 * s: prefill chunks or decode steps of different sequences cost differently). Stage s may start micro-batch m when
 * stage s−1 has finished it and stage s is free.
 *
 * - static (GPipe fill / drain): every stage takes the micro-batches in arrival order;
 * - dynamic: the first stage orders its queue from the measured times by Johnson's rule on the pipeline's two halves
 *   (items whose front half is cheaper than their back half first, by increasing front; the rest last, by decreasing
 *   back) — short items fill the pipeline quickly, long tails drain while the front works; every later stage, when
 *   it becomes free, takes the micro-batch that became ready first.
 *
 * Returns the makespan, each stage's busy time and the bubble fraction 1 − Σ busy / (S · makespan).
 */
export interface ScheduleResult {
  readonly makespan: number;
  readonly busy: readonly number[];
  readonly bubble: number;
  /** The order each stage ran the micro-batches in. */
  readonly orders: readonly (readonly number[])[];
}

/**
 * Simulate S stages over M micro-batches with per-(micro-batch, stage) times `t[m][s]`: `static` runs them in arrival
 * order (GPipe fill / drain), `dynamic` orders them by Johnson's rule on the pipeline's halves; returns the makespan,
 * per-stage busy time and the bubble fraction 1 − Σbusy / (S · makespan).
 */
export function simulatePipeline(t: readonly (readonly number[])[], policy: 'static' | 'dynamic'): ScheduleResult {
  const M = t.length;
  const S = t[0]?.length ?? 0;
  const half = Math.max(1, Math.floor(S / 2));
  const front = (m: number) => t[m]!.slice(0, half).reduce((a, x) => a + x, 0);
  const back = (m: number) => t[m]!.slice(half).reduce((a, x) => a + x, 0);
  const all = Array.from({ length: M }, (_, m) => m);
  const firstHalf = all.filter((m) => front(m) <= back(m)).sort((a, b) => front(a) - front(b));
  const secondHalf = all.filter((m) => front(m) > back(m)).sort((a, b) => back(b) - back(a));
  const johnson = [...firstHalf, ...secondHalf];
  const done: number[][] = Array.from({ length: M }, () => new Array<number>(S).fill(Infinity));
  const orders: number[][] = [];
  const busy: number[] = [];
  for (let s = 0; s < S; s++) {
    const pending = new Set(Array.from({ length: M }, (_, m) => m));
    const order: number[] = [];
    let free = 0;
    let b = 0;
    while (pending.size) {
      const readyAt = (m: number) => (s === 0 ? 0 : done[m]![s - 1]!);
      let pick: number;
      if (policy === 'static' && s > 0) {
        pick = orders[s - 1]![order.length]!; // the previous stage's order (arrival order throughout)
      } else if (policy === 'static') {
        pick = order.length;
      } else if (s === 0) {
        pick = johnson[order.length]!;
      } else {
        pick = [...pending].reduce((a, m) => (readyAt(m) < readyAt(a) ? m : a));
      }
      const start = Math.max(free, readyAt(pick));
      free = start + t[pick]![s]!;
      done[pick]![s] = free;
      b += t[pick]![s]!;
      order.push(pick);
      pending.delete(pick);
    }
    orders.push(order);
    busy.push(b);
  }
  const makespan = Math.max(...done.map((d) => d[S - 1]!));
  const bubble = 1 - busy.reduce((a, x) => a + x, 0) / (S * makespan);
  return { makespan, busy, bubble, orders };
}
