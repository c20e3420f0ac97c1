/**
 * Comparing a device's output with the float64 reference, with DESIGN.md's tolerances per dtype: elementwise
 * |got − ref| ≤ abs + rel·|ref| on every element, and in aggregate ‖got − ref‖ / ‖ref‖ ≤ rel. Integers exact; NaN
 * only where the reference has NaN. Browser-safe (the page of test/browser bundles it): no Node or vitest imports.
 */
import { dtypeTolerance, isFloat, type DType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import type { Tensor } from '../../ir/tensor.js';

/**
 * Tolerances per dtype; f32's is 10× looser after long reductions (sums of many rounded terms), and there an element's
 * allowance scales with the output's RMS (`scaled`): a reduction's rounding error is proportional to the magnitude of
 * what it summed — a normalized row's element near 0 carries the same absolute error as its neighbours of size 1.
 */
export interface Tolerance {
  rel: number;
  abs: number;
  scaled?: boolean;
  /**
   * Per element, how far the reference itself moves when its f16 / bf16 intermediates round the other way
   * (`sensitivity.ts`): added to the element's allowance, and subtracted from its error in the aggregate.
   */
  spread?: ArrayLike<number>;
}

export function tolerance(dt: DType, longReduction = false): Tolerance {
  const t = dtypeTolerance(dt, longReduction);
  return longReduction && (dt === 'f32' || dt === 'f64') ? { ...t, scaled: true } : t;
}

/** Ops that sum (or otherwise combine) many elements: the ones that earn the long-reduction tolerance. */
const LONG_REDUCTION =
  /^(matmul|matmul_integer|matmul_nbits|gemm|einsum|conv\w*|cumsum|softmax|log_softmax)$|^reduce_|norm|attention/;

/** Whether any node of the graph reduces long (elementwise, movement and gather ops do not). */
export function reducesLong(graph: Graph): boolean {
  return graph.nodes.some((n) => LONG_REDUCTION.test(n.op));
}

export interface Mismatch {
  output: string;
  reason: string;
}

/**
 * Elementwise |got − ref| ≤ abs + rel·|ref| (the first offending element is reported), then rel-L2
 * ‖got − ref‖ / ‖ref‖ ≤ rel. The aggregate check is waived only when the error is also within abs in RMS: an output
 * of tiny values (e.g. gelu far in the negative tail) has a large relative error from f32 rounding alone.
 */
export function compareWithReference(
  name: string,
  got: Tensor,
  ref: Tensor,
  tol: Tolerance = tolerance(ref.dtype),
): Mismatch | undefined {
  if (got.dtype !== ref.dtype) return { output: name, reason: `dtype ${got.dtype} vs ${ref.dtype}` };
  if (got.shape.join() !== ref.shape.join()) return { output: name, reason: `shape [${got.shape}] vs [${ref.shape}]` };
  let sq = 0;
  let finite = 0;
  if (tol.scaled) {
    for (let i = 0; i < ref.data.length; i++) {
      const r = ref.data[i]!;
      if (Number.isFinite(r)) {
        sq += r * r;
        finite++;
      }
    }
  }
  const scale = finite ? Math.sqrt(sq / finite) : 0;
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.data.length; i++) {
    const g = got.data[i]!;
    const r = ref.data[i]!;
    if (Number.isNaN(r) || Number.isNaN(g)) {
      if (Number.isNaN(r) && Number.isNaN(g)) continue;
      return { output: name, reason: `element ${i}: got ${g}, reference ${r}` };
    }
    if (g === r) continue;
    if (!isFloat(ref.dtype)) return { output: name, reason: `element ${i}: got ${g}, reference ${r} (exact dtype)` };
    const d = Math.abs(g - r);
    const s = tol.spread?.[i] ?? 0;
    if (!Number.isFinite(d) || d > tol.abs + tol.rel * Math.max(Math.abs(r), scale) + s) {
      return {
        output: name,
        reason: `element ${i}: got ${g}, reference ${r} (|diff| ${d.toExponential(2)} > ${tol.abs} + ${tol.rel}·${tol.scaled ? `max(|ref|, rms ${scale.toExponential(2)})` : '|ref|'}${s ? ` + spread ${s.toExponential(2)}` : ''})`,
      };
    }
    const e = Math.max(0, d - s);
    num += e * e;
    den += r * r;
  }
  const rel = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
  const rms = ref.data.length ? Math.sqrt(num / ref.data.length) : 0;
  if (rel > tol.rel && rms > tol.abs) {
    return { output: name, reason: `rel-L2 ${rel.toExponential(2)} > ${tol.rel}, rms ${rms.toExponential(2)}` };
  }
  return undefined;
}
