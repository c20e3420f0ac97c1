/**
 * A FLOP cost model by op on concrete shapes, for `kiln inspect`. What is counted (one multiply-add = 2 FLOPs):
 * - matmul / matmul_integer: 2·batch·M·N·K (2 · output elements · K); gemm the same, plus one add per output
 *   element when it has a C input; einsum 2 · the product of every label's size; sparse_matmul 2 · rows of a · the
 *   stored values (zeros inside kept bsr blocks and 2:4 groups included: the kernel multiplies them).
 * - fused_contraction: its contraction as above (shapes re-inferred through the body) plus one FLOP per epilogue op
 *   per output element (the reshape some bodies hold right after the contraction is free), plus a norm prologue's
 *   own cost.
 * - attention: 2·B·Hq·S·T·(D + Dv) for Q·Kᵀ and P·V over all S×T scores (a causal mask's skipped half is not
 *   subtracted), plus the softmax's SOFTMAX_FLOPS per score; T includes past keys.
 * - elementwise / broadcast ops: one per output element; fused_elementwise: output elements × its body's op count.
 * - softmax, norms, reductions, arg / cumulative reductions: a small per-op constant × input elements.
 * - movement (fusion kind injective: reshape, transpose, slice, concat, gather, pad …), fused_injective and copies: 0.
 * - any other op: one per output element (a floor, not a model).
 * Host-computed nodes and views run no kernel and are not costed by the caller.
 */
import { contractionPrologue, contractionView, fusedBody, inferBody } from '../ir/ops/fused.js';
import { KilnError } from '../ir/errors.js';
import { attentionGeometry } from '../ir/ops/attention.js';
import { labelDims, planEinsum } from '../ir/ops/nn.js';
import { getOp, resolveAttrs, type Attrs } from '../ir/registry.js';
import { tensorType, type TensorType } from '../ir/types.js';

/** FLOPs per score of a softmax row: max, subtract, exp, sum, divide. */
export const SOFTMAX_FLOPS = 5;

/** FLOPs per input element of the row ops (mean / variance, normalize, scale, shift …). */
const PER_INPUT: Readonly<Record<string, number>> = {
  softmax: SOFTMAX_FLOPS,
  log_softmax: SOFTMAX_FLOPS + 1,
  layer_norm: 8,
  rms_norm: 5,
  reduce_log_sum_exp: 3,
  argmax: 1,
  argmin: 1,
  cumsum: 1,
};

/** Concrete shapes of a node's inputs (undefined: optional input left out) and outputs. */
export interface NodeShapes {
  readonly inputs: readonly (readonly number[] | undefined)[];
  readonly outputs: readonly (readonly number[])[];
}

const numel = (s: readonly number[] | undefined): number => (s ? s.reduce((a, b) => a * b, 1) : 0);

/** FLOPs one run of node `op` (with attributes `attrs`, as stored on the node) takes on these shapes. */
export function nodeFlops(op: string, attrs: Attrs, shapes: NodeShapes): number {
  if (op === 'copy') return 0; // the executor's copy of a view (no graph op)
  const def = getOp(op);
  const at = resolveAttrs(def, attrs, op);
  const out = numel(shapes.outputs[0]);
  const a = shapes.inputs[0];
  switch (op) {
    case 'matmul':
    case 'matmul_integer':
    case 'matmul_ggml':
      return 2 * out * (a && a.length ? a[a.length - 1]! : 0);
    case 'gemm': {
      const k = at['transA'] ? a![0]! : a![1]!;
      return 2 * out * k + (shapes.inputs[2] ? out : 0);
    }
    case 'einsum':
      return einsumFlops(String(at['equation']), shapes.inputs as (readonly number[])[]);
    case 'attention':
      return attentionFlops(at, shapes);
    case 'fused_elementwise':
      return out * fusedBody(String(at['body'])).nodes.length;
    case 'fused_contraction':
      return contractionFlops(String(at['body']), shapes);
    case 'fused_injective':
      return 0;
    case 'fused_reduction':
      // the reduction (one per input element) plus one per epilogue op per output element
      return numel(a) + out * (fusedBody(String(at['body'])).nodes.length - 1);
    case 'sparse_matmul':
      // the stored values only (csr: nnz, bsr: nnzb · h · w, 2:4: K · N / 2) for each row of a
      return (2 * numel(a) * numel(shapes.inputs[1])) / Number(at['K']);
  }
  if (op in PER_INPUT) return PER_INPUT[op]! * numel(a);
  if (def.fusion === 'injective') return 0;
  if (def.fusion === 'reduce') return numel(a); // reduce_sum / max / mean …: one per input element
  return out;
}

/** The body's contraction on the node's shapes, plus one FLOP per epilogue op per output element. */
function contractionFlops(text: string, shapes: NodeShapes): number {
  const body = fusedBody(text, 'fused_contraction', 'fused_contraction');
  const types = inferBody(
    body,
    body.inputs.map((v, i) => tensorType(v.type.dtype, shapes.inputs[i] ?? [])),
    'fused_contraction',
  );
  const shapeOf = (t: TensorType | undefined) => t!.shape as number[];
  const cost = (n: (typeof body.nodes)[number]) =>
    nodeFlops(n.op, n.attrs, {
      inputs: n.inputs.map((x) => (x ? shapeOf(types.get(x)) : undefined)),
      outputs: n.outputs.map((o) => shapeOf(types.get(o))),
    });
  // a norm prologue costs what the norm would (its sums ride on the product's loop)
  const norm = contractionPrologue(body);
  const [first, ...rest] = body.nodes.slice(norm ? 1 : 0);
  const view = contractionView(body);
  const epilogue = rest.filter((n) => n !== view).length;
  return (norm ? cost(norm) : 0) + cost(first!) + epilogue * numel(shapes.outputs[0]);
}

/** 2 · Π(label sizes): every combination of labels is one multiply-add (ellipsis dims are labels too). */
function einsumFlops(equation: string, inputs: readonly (readonly number[])[]): number {
  const fail = (m: string): never => {
    throw new KilnError('attribute', m, { op: 'einsum' });
  };
  const plan = planEinsum(
    equation,
    inputs.map((s) => s.length),
    fail,
  );
  return 2 * numel(labelDims(plan, inputs, fail));
}

/** Q·Kᵀ and P·V over all B·Hq·S·T scores, and the softmax over them (the op's own geometry). */
function attentionFlops(a: Attrs, shapes: NodeShapes): number {
  if (!shapes.inputs[0] || !shapes.inputs[1]) return 0;
  const g = attentionGeometry(shapes.inputs, a, (m): never => {
    throw new KilnError('shape', m, { op: 'attention' });
  });
  const [B, H, S, T, D, Dv] = [g.batch, g.qHeads, g.qSeq, g.total, g.headSize, g.vHeadSize] as number[];
  const scores = B! * H! * S! * T!;
  return 2 * scores * (D! + Dv!) + SOFTMAX_FLOPS * scores;
}
