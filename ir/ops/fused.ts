/**
 * Fused groups run as one node. Their `body` attribute is the group as IR text (a graph whose inputs are the node's
 * inputs, in order, and whose one output is the node's output), so the printer / parser round-trip it as a plain
 * string. The float64 reference *is* the interpretation of the body, and type inference re-infers the body over the
 * node's actual input types.
 * - `fused_elementwise`: elementwise / broadcast ops (one pointwise kernel).
 * - `fused_contraction`: a matmul / gemm whose result feeds elementwise ops (bias, activation, residual, scale, mask):
 *   one contraction kernel applying them as it stores each output element.
 * - `fused_reduction`: a reduction (sum, mean, max …) whose result feeds elementwise ops (a custom op's epilogue, a
 *   scale, a residual): one row-reduction kernel applying them as it stores each row's value.
 * - `fused_injective`: concats and the view ops between them (a KV cache's past ++ new keys and values stacked into
 *   one `present`): one pointwise kernel that maps each output index back through the body to the input it reads.
 */
import { VerifyError } from '../errors.js';
import type { Graph, Node, Value } from '../graph.js';
import { inferOp } from '../infer.js';
import { interpret } from '../interpret.js';
import { registerOp } from '../registry.js';
import type { Tensor } from '../tensor.js';
import { parseGraph } from '../text.js';
import { typeToString, type TensorType } from '../types.js';
import { verify } from '../verify.js';

// Bodies are immutable strings: parse and verify each distinct one once.
const BODIES = new Map<string, Graph>();
const MAX_CACHED = 4096;

/** The parsed body of a `fused_elementwise` node (cached by its text; callers must not edit it). */
export function fusedBody(text: string, node = 'fused_elementwise', op = 'fused_elementwise'): Graph {
  let g = BODIES.get(text);
  if (g) return g;
  try {
    g = parseGraph(text);
    verify(g);
  } catch (e) {
    throw new VerifyError(`${op} body: ${(e as Error).message}`, { node, op });
  }
  if (g.outputs.length !== 1) {
    throw new VerifyError(`${op} body must have exactly one output`, { node, op });
  }
  if (BODIES.size >= MAX_CACHED) BODIES.delete(BODIES.keys().next().value!);
  BODIES.set(text, g);
  return g;
}

/** Types of every body value when the body's inputs have `inputs` types (symbolic dims allowed). */
export function inferBody(body: Graph, inputs: readonly TensorType[], node: string): Map<Value, TensorType> {
  const types = new Map<Value, TensorType>();
  body.inputs.forEach((v, i) => types.set(v, inputs[i]!));
  for (const c of body.constants) types.set(c, c.type);
  for (const n of body.nodes) {
    const ins = n.inputs.map((x) => (x ? types.get(x) : undefined));
    const r = inferOp(n.op, `${node}/${n.name}`, ins, n.attrs, n.outputs.length, (i) => n.inputs[i]?.data);
    n.outputs.forEach((o, i) => types.set(o, r.types[i]!));
  }
  return types;
}

/** A fused op: reference = interpretation of the body, types = the body's re-inferred over the node's inputs. */
function registerFused(name: string, doc: string, check?: (body: Graph, fail: (m: string) => never) => void): void {
  registerOp({
    name,
    doc,
    inputs: [{ name: 'x', variadic: true }],
    outputs: [{ name: 'y' }],
    attrs: { body: { kind: 'string' } },
    // a group is the fusion passes' output, not something to fuse again
    fusion: 'opaque',
    infer(ctx) {
      const body = fusedBody(ctx.attrs['body'] as string, ctx.node, name);
      check?.(body, ctx.fail);
      if (body.inputs.length !== ctx.inputs.length) {
        ctx.fail(`body has ${body.inputs.length} inputs, node has ${ctx.inputs.length}`);
      }
      const ins = ctx.inputs.map((t, i) => {
        const want = body.inputs[i]!.type;
        if (!t || t.dtype !== want.dtype || t.shape.length !== want.shape.length) {
          ctx.fail(`input ${i} is ${t ? typeToString(t) : 'absent'}, body wants ${typeToString(want)}`);
        }
        return t!;
      });
      return [inferBody(body, ins, ctx.node).get(body.outputs[0]!)!];
    },
    reference(inputs, attrs, ctx) {
      const body = fusedBody(attrs['body'] as string, ctx.node, name);
      const feeds: Record<string, Tensor> = {};
      body.inputs.forEach((v, i) => (feeds[v.name] = inputs[i]!));
      // the interpreter rounds every interior value to its dtype, exactly as the unfused nodes would
      return [interpret(body, feeds)[body.outputs[0]!.name]!];
    },
  });
}

registerFused(
  'fused_elementwise',
  'A group of elementwise / broadcast ops run as one kernel; `body` is the group as IR text over the inputs.',
);

/**
 * The reshape right after a body's 2-D contraction ([M, N] → [..., N], splitting M), if there is one: exporters
 * reshape a gemm's rows back into [batch, seq] before the bias / residual / activation.
 */
export function contractionView(body: Graph): Node | undefined {
  const [first, second] = body.nodes.slice(contractionPrologue(body) ? 1 : 0);
  if (!first || !second || second.op !== 'reshape' || second.inputs[0] !== first.outputs[0]) return undefined;
  return second;
}

/**
 * The norm a body may start with (RMS, or layer norm without a bias), normalizing the contraction's first operand
 * along its k axis (the last): it reads body inputs 0 (x) and 1 (its weight), and the contraction reads its result
 * and then body inputs 2, 3 ….
 */
export function contractionPrologue(body: Graph): Node | undefined {
  const first = body.nodes[0];
  return first?.op === 'rms_norm' || first?.op === 'layer_norm' ? first : undefined;
}

/** Contractions a `fused_contraction` body may start with. */
export const CONTRACTION_OPS: ReadonlySet<string> = new Set(['matmul', 'gemm', 'matmul_nbits', 'matmul_ggml']);

registerFused(
  'fused_contraction',
  'A matmul / gemm / matmul_nbits / matmul_ggml and the elementwise ops applied to its result, run as one kernel; ' +
    '`body` is the group as IR text: its first node is the contraction, reading the first body inputs in order; the ' +
    'rest are elementwise. ' +
    'It may be preceded by an RMS or (bias-free) layer norm of the first operand along k (body inputs 0 and 1).',
  (body, fail) => {
    const norm = contractionPrologue(body);
    const [first, ...rest] = body.nodes.slice(norm ? 1 : 0);
    if (!first || !CONTRACTION_OPS.has(first.op))
      fail('body must start with a matmul, gemm, matmul_nbits or matmul_ggml');
    if (norm) {
      const [x, w] = body.inputs;
      const axis = norm.attrs['axis'] as number | undefined;
      const rank = x?.type.shape.length ?? 0;
      if (norm.inputs[0] !== x || norm.inputs[1] !== w || (axis !== undefined && axis !== -1 && axis !== rank - 1)) {
        fail('the norm must normalize body input 0 along its last axis with body input 1 as its weight');
      }
      if (norm.inputs[2]) fail('a layer norm before the contraction has no bias (its β · W is an epilogue add)');
      if (first.inputs[0] !== norm.outputs[0] || first.inputs.slice(1).some((y, i) => y !== body.inputs[i + 2])) {
        fail('the contraction must read the norm, then body inputs 2, 3 … in order');
      }
      if (first.op === 'gemm' && first.attrs['transA']) fail('the normed operand cannot be transposed');
    } else if (first.inputs.some((x, i) => x !== body.inputs[i])) {
      fail('the contraction must read the first body inputs in order');
    }
    const view = contractionView(body);
    for (const n of rest) {
      if (n !== view && !FUSIBLE_OPS.has(n.op)) fail(`op ${n.op} may not follow the contraction in a body`);
    }
  },
);

/** Reductions a `fused_reduction` body may start with (float, over the one input). */
export const REDUCTION_OPS: ReadonlySet<string> = new Set([
  'reduce_sum',
  'reduce_mean',
  'reduce_max',
  'reduce_min',
  'reduce_prod',
  'reduce_sum_square',
  'reduce_l2',
]);

registerFused(
  'fused_reduction',
  'A reduction and the elementwise ops applied to its result, run as one row-reduction kernel; `body` is the group ' +
    'as IR text: its first node is the reduction, reading body input 0; the rest are elementwise (inputs broadcast ' +
    'to the reduced shape).',
  (body, fail) => {
    const [first, ...rest] = body.nodes;
    if (!first || !REDUCTION_OPS.has(first.op)) fail('body must start with a reduction');
    if (first.inputs.length !== 1 || first.inputs[0] !== body.inputs[0]) fail('the reduction must read body input 0');
    for (const n of rest) if (!FUSIBLE_OPS.has(n.op)) fail(`op ${n.op} may not follow the reduction in a body`);
  },
);

/**
 * Ops a body may hold: elementwise / broadcast ops whose lowering is a pure value expression of the output index
 * (codegen/lower/fused.ts builds each). Ops with side checks (i64 overflow flags) stay out: bodies are float-only.
 */
export const FUSIBLE_OPS: ReadonlySet<string> = new Set([
  ...['neg', 'abs', 'exp', 'log', 'sqrt', 'reciprocal', 'tanh', 'erf', 'sigmoid', 'relu', 'gelu', 'silu'],
  ...['floor', 'ceil', 'round', 'sign', 'sin', 'cos', 'tan', 'asin', 'acos', 'atan'],
  ...['softplus', 'hard_sigmoid', 'hard_swish', 'leaky_relu'],
  ...['identity', 'add', 'sub', 'mul', 'div', 'mod', 'pow', 'max', 'min', 'sum', 'cast', 'clip', 'where'],
]);

/** Admit an op defined at run time (a `kiln/dsl` custom op, whose lowering registers its expression builder). */
export function registerFusibleOp(op: string): void {
  (FUSIBLE_OPS as Set<string>).add(op);
}

/**
 * Ops an injective body may hold: concat and the view ops whose `OpDef.layout` maps an output index to an input index
 * (their shape / axes parameters are body constants). Each output element reads exactly one input element.
 */
export const INJECTIVE_OPS: ReadonlySet<string> = new Set(['concat', 'transpose', 'reshape', 'squeeze', 'unsqueeze']);

registerFused(
  'fused_injective',
  'Concats and the view ops between them (transpose, reshape, squeeze, unsqueeze) run as one kernel; `body` is the ' +
    'group as IR text: every output element is one input element, found by mapping its index back through the body.',
  (body, fail) => {
    for (const n of body.nodes) if (!INJECTIVE_OPS.has(n.op)) fail(`op ${n.op} may not appear in an injective body`);
  },
);
