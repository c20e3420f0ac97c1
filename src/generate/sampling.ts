/**
 * Choosing the next token from a row of logits: greedy, or temperature with top-k / top-p (nucleus) and a
 * repetition penalty, drawn from a seeded generator so a seed reproduces a run.
 */
export interface SamplingOptions {
  /** 0 (default) is greedy. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = all). */
  topP?: number;
  /** > 1 makes tokens already in the sequence less likely (CTRL-style: positive logits divided, negative multiplied). */
  repetitionPenalty?: number;
  /** Seed of the random draws (default 0). */
  seed?: number;
}

/** mulberry32: small, fast, seedable; plenty for sampling. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Index of the largest value (the first on ties), as the device argmax does. */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/**
 * The tokens sampling may draw (temperature > 0): sorted by logit (lower index first on ties), cut to the top k,
 * softmax weights at the temperature, cut to the smallest set reaching top-p; `total` normalizes the weights.
 */
export function candidates(
  v: ArrayLike<number>,
  temp: number,
  opts: SamplingOptions,
): { idx: number[]; p: number[]; total: number } {
  let idx = Array.from({ length: v.length }, (_, i) => i).sort((a, b) => v[b]! - v[a]! || a - b);
  const k = opts.topK ?? 0;
  if (k > 0) idx = idx.slice(0, k);
  const m = v[idx[0]!]!;
  const p = idx.map((i) => Math.exp((v[i]! - m) / temp));
  let total = p.reduce((a, b) => a + b, 0);
  const topP = opts.topP ?? 1;
  if (topP < 1) {
    let acc = 0;
    let keep = 0;
    while (keep < p.length && acc < topP * total) acc += p[keep++]!;
    idx = idx.slice(0, Math.max(1, keep));
    p.length = idx.length;
    total = p.reduce((a, b) => a + b, 0);
  }
  return { idx, p, total };
}

/** The next token from `logits` (one row); `history` feeds the repetition penalty; `rand` draws in [0, 1). */
export function sample(
  logits: ArrayLike<number>,
  opts: SamplingOptions,
  rand: () => number,
  history: readonly number[] = [],
): number {
  const v = Float64Array.from(logits as ArrayLike<number>);
  const pen = opts.repetitionPenalty ?? 1;
  if (pen !== 1) for (const t of new Set(history)) v[t] = v[t]! > 0 ? v[t]! / pen : v[t]! * pen;
  const temp = opts.temperature ?? 0;
  if (!(temp > 0)) return argmax(v);
  const { idx, p, total } = candidates(v, temp, opts);
  let r = rand() * total;
  for (let j = 0; j < idx.length; j++) {
    r -= p[j]!;
    if (r < 0) return idx[j]!;
  }
  return idx[idx.length - 1]!;
}
