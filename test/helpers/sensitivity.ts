/**
 * How far a low-precision graph's reference moves when its intermediate roundings go the other way.
 *
 * A device storing f16 / bf16 between ops legitimately rounds some intermediates one ulp away from the reference (an
 * exp in f32 instead of f64 lands on the other side of a rounding boundary). In a well-conditioned graph that costs an
 * ulp or two of the output; in an ill-conditioned one — a layer norm over a row whose values differ only in their last
 * bits, e.g. a softmax of a softmax — it moves the output by percents, and no fixed tolerance separates that from a
 * bug. `roundingSpread` measures it: the reference re-run with every intermediate element nudged one ulp up or down
 * (a fixed pseudo-random pattern per trial), the largest move per output element kept. Graph outputs themselves are not
 * nudged, so a well-conditioned graph keeps (about) its dtype tolerance.
 */
import { roundToDtype, type DType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import type { Tensor } from '../../ir/tensor.js';

/** The spacing of `dt` values at `x` (f16: 10 fraction bits, subnormals below 2^-14; bf16: 7 bits). */
export function ulpOf(dt: 'f16' | 'bf16', x: number): number {
  const frac = dt === 'f16' ? 10 : 7;
  const minExp = dt === 'f16' ? -14 : -126;
  const a = Math.abs(x);
  const e = a === 0 ? minExp : Math.max(minExp, Math.floor(Math.log2(a)));
  return 2 ** (e - frac);
}

/**
 * Per output (by name), the largest |reference − nudged reference| per element over `trials` nudged runs; undefined
 * when no intermediate is f16 / bf16 (nothing to nudge).
 */
export function roundingSpread(
  graph: Graph,
  feeds: Record<string, Tensor>,
  ref: Record<string, Tensor>,
  trials = 3,
): Record<string, Float64Array> | undefined {
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const low = (dt: DType): dt is 'f16' | 'bf16' => dt === 'f16' || dt === 'bf16';
  if (!graph.nodes.some((n) => n.outputs.some((o) => low(o.type.dtype) && !outputs.has(o.name)))) return undefined;
  const spread: Record<string, Float64Array> = {};
  for (const [k, t] of Object.entries(ref)) spread[k] = new Float64Array(t.data.length);
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  for (let trial = 0; trial < trials; trial++) {
    let state = 0x9e3779b9 ^ (trial * 0x85ebca6b);
    const coin = () => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state & 1) === 1;
    };
    const nudged = interpret(graph, feeds, {
      // the interpreter stores each f16 / bf16 result in a fresh array (never a feed's), so nudging it in place is safe
      onNode: (node, outs) => {
        const n = byName.get(node.name)!;
        outs.forEach((t, i) => {
          const dt = t.dtype;
          if (!low(dt) || outputs.has(n.outputs[i]!.name)) return;
          for (let j = 0; j < t.data.length; j++) {
            const x = t.data[j]!;
            if (Number.isFinite(x)) t.data[j] = roundToDtype(dt, x + (coin() ? 1 : -1) * ulpOf(dt, x));
          }
        });
      },
    });
    for (const [k, s] of Object.entries(spread)) {
      const a = ref[k]!.data;
      const b = nudged[k]!.data;
      for (let j = 0; j < s.length; j++) {
        const d = Math.abs(a[j]! - b[j]!);
        if (Number.isFinite(d) && d > s[j]!) s[j] = d; // a nudge that overflows widens nothing
      }
    }
  }
  return spread;
}
