/**
 * Norm prologue fusion: an RMS or layer norm whose one reader is a contraction normalizing the operand it contracts
 * (`norm(x, w) · W`, the norm over x's last axis = k) joins that contraction's `fused_contraction` as its first body
 * node. The kernel reads x once and never writes the normed activation: it scales b's k-th element by w[k] as it
 * loads it and sums along k as it multiplies —
 * - RMS: Σx², each row's sum scaled by 1 / √(Σx² / K + eps): (x / rms(x) ⊙ w) · W reassociated;
 * - layer: x' = x − x₀ (the row's first element: shifted moments, so a constant row gives exactly 0 and the mean's
 *   size does not cancel), Σx', Σx'² and each column's Σ(w ⊙ W); the result (Σx'·(w ⊙ W) − μ'·Σ(w ⊙ W)) / √(σ² + eps).
 *   The norm's bias β leaves it: β · W is a constant (float64 sums) added right after the product in the body.
 * A LLaMA layer's two RMS norms, a GPT-2 / BERT layer's two layer norms each ride on the projection after them.
 *
 * Conditions: the norm over the last axis, f32 (an f16 norm's result is rounded to f16 before the product, which the
 * fused sum cannot repeat), one result, read by that contraction only (as operand a, not transposed; through a
 * reshape that keeps the last dim, which is moved before the norm) and no graph output; a 1-D weight, a constant
 * bias with a constant W; the contraction a plain matmul / gemm (alpha 1) or a `fused_contraction` without a
 * prologue; the fused node within the kernel's buffer limit.
 */
import { isFloat } from '../../ir/dtype.js';
import { Graph, Node, Value } from '../../ir/graph.js';
import { CONTRACTION_OPS, contractionPrologue, contractionView } from '../../ir/ops/fused.js';
import { makeTensor } from '../../ir/tensor.js';
import { tensorType } from '../../ir/types.js';
import { parseGraph, printGraph } from '../../ir/text.js';
import type { Pass } from '../context.js';
import { Names } from '../rewrite.js';
import { nodeBody } from './elementwise.js';

/** The contraction body `u` computes: its own (a fused_contraction) or a one-node body over its inputs. */
function bodyOf(u: Node): Graph | undefined {
  if (u.op === 'fused_contraction') {
    // a private copy: the parsed-body cache must not see its values given new producers
    const b = parseGraph(u.attrs['body'] as string);
    return contractionPrologue(b) ? undefined : b;
  }
  if (!CONTRACTION_OPS.has(u.op) || u.inputs.some((x) => !x)) return undefined;
  return nodeBody(u);
}

const NORMS = new Set(['rms_norm', 'layer_norm']);

/** A norm this pass may fuse: over the last axis, f32, one result, a 1-D weight (and a constant bias if any). */
function fusibleNorm(n: Node, outputs: ReadonlySet<Value>): boolean {
  if (!NORMS.has(n.op) || n.outputs.length !== 1) return false;
  const [x, w, bias] = n.inputs;
  const y = n.outputs[0]!;
  const rank = x?.type.shape.length ?? 0;
  const axis = (n.attrs['axis'] as number | undefined) ?? -1;
  // f32 only: an f16 norm's result is rounded to f16 before the product, a rounding the fused sum cannot repeat
  if (!x || !w || (axis !== -1 && axis !== rank - 1) || y.type.dtype !== 'f32' || outputs.has(y)) return false;
  return w.type.shape.length === 1 && (!bias || (bias.isConst && bias.type.shape.length === 1));
}

/** Readers of the norm's result that only want its shape read x instead (the same shape): exporters' Shape ops. */
function moveShapeReaders(graph: Graph, norm: Node): void {
  const [x] = norm.inputs;
  const y = norm.outputs[0]!;
  for (const u of graph.users(y)) {
    if (u.op === 'shape' || u.op === 'size') u.inputs.forEach((v, i) => v === y && u.setInput(i, x!));
  }
}

/**
 * norm → reshape keeping the last dim (exporters flatten [batch, seq, dim] for a gemm) → reshape → norm: the same
 * rows normalized, so the norm can sit right before the contraction.
 */
function hoistReshapes(graph: Graph, outputs: ReadonlySet<Value>, names: Names): void {
  for (const norm of [...graph.nodes]) {
    if (!fusibleNorm(norm, outputs)) continue;
    moveShapeReaders(graph, norm);
    const y = norm.outputs[0]!;
    const users = graph.users(y);
    const r = users[0];
    if (users.length !== 1 || r?.op !== 'reshape' || r.inputs[0] !== y) continue;
    const out = r.outputs[0]!;
    const K = y.type.shape.at(-1);
    if (typeof K !== 'number' || out.type.shape.at(-1) !== K || outputs.has(out)) continue;
    const x = norm.inputs[0]!;
    const flat = new Value(names.fresh(`${x.name}_flat`), { ...x.type, shape: out.type.shape });
    const r2 = new Node(names.fresh(`${r.name}_first`), 'reshape', [x, ...r.inputs.slice(1)], [flat], { ...r.attrs });
    const n2 = new Node(names.fresh(`${norm.name}_flat`), norm.op, [flat, ...norm.inputs.slice(1)], [out], {
      ...norm.attrs,
    });
    graph.addNode(r2, r);
    graph.addNode(n2, r);
    graph.removeNode(r);
    graph.removeNode(norm);
  }
}

/** β · W (W [K, N], or [N, K] for a transposed gemm operand) as a constant [N], summed in float64. */
function biasTimesWeight(beta: Value, w: Value, transB: boolean, names: Names): Value | undefined {
  if (!w.isConst || w.type.shape.length !== 2 || !isFloat(w.type.dtype)) return undefined;
  const [r, c] = w.type.shape as [number, number];
  const [K, N] = transB ? [c, r] : [r, c];
  if (beta.type.shape[0] !== K) return undefined;
  const bd = beta.data!.data;
  const wd = w.data!.data;
  const out = new Array<number>(N).fill(0);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) out[n]! += Number(bd[k]) * Number(wd[transB ? n * K + k : k * N + n]);
  }
  const t = makeTensor(w.type.dtype, [N], out);
  return new Value(names.fresh(`${beta.name}_times_${w.name}`), tensorType(t.dtype, t.shape), t);
}

/** Fuse in place; returns the number of norms fused. */
export function fuseNormPrologues(graph: Graph, maxInputs = 7): number {
  const outputs = new Set(graph.outputs);
  const names = new Names(graph);
  hoistReshapes(graph, outputs, names);
  let fused = 0;
  for (const norm of [...graph.nodes]) {
    if (!fusibleNorm(norm, outputs)) continue;
    const [x, w, beta] = norm.inputs as [Value, Value, Value | null | undefined];
    moveShapeReaders(graph, norm);
    const y = norm.outputs[0]!;
    const users = graph.users(y);
    if (users.length !== 1) continue;
    const u = users[0]!;
    const body = bodyOf(u);
    if (!body || u.inputs[0] !== y || u.inputs.slice(1).includes(y)) continue;
    const anchor = body.nodes[0]!;
    if (
      anchor.op === 'gemm' &&
      (anchor.attrs['transA'] || ((anchor.attrs['alpha'] as number | undefined) ?? 1) !== 1)
    ) {
      continue;
    }
    if (anchor.inputs[0] !== body.inputs[0]) continue;
    // a layer norm's bias leaves the norm: β · W is added after the product (a constant computed here)
    let bw: Value | undefined;
    if (beta) {
      const wi = body.inputs.indexOf(anchor.inputs[1]!);
      bw = wi > 0 ? biasTimesWeight(beta, u.inputs[wi]!, !!anchor.attrs['transB'], names) : undefined;
      if (!bw) continue;
    }
    if (u.inputs.length + 1 + (bw ? 1 : 0) > maxInputs) continue;
    // the new body: norm(x, w) then the old body with its input 0 replaced by the norm (and β · W added)
    const nb = new Graph('body');
    const xin = new Value('px', x.type);
    const win = new Value('pw', w.type);
    const normed = new Value('pn', y.type);
    nb.inputs = [xin, win, ...body.inputs.slice(1)];
    nb.constants = [...body.constants];
    const map = new Map<Value, Value>([[body.inputs[0]!, normed]]);
    const nodes = body.nodes.map(
      (n) =>
        new Node(
          n.name,
          n.op,
          n.inputs.map((v) => (v ? (map.get(v) ?? v) : null)),
          n.outputs,
          { ...n.attrs },
        ),
    );
    let out = body.outputs[0]!;
    if (bw) {
      const bin = new Value('pb', bw.type);
      nb.inputs.push(bin);
      // after the product, or after the reshape of a 2-D product back to [..., N]
      const view = contractionView(body) ? 1 : 0;
      const prod = nodes[view]!.outputs[0]!;
      const sum = new Value('ps', prod.type);
      for (const n of nodes.slice(view + 1)) n.inputs.forEach((v, i) => v === prod && n.setInput(i, sum));
      nodes.splice(view + 1, 0, new Node('pa', 'add', [prod, bin], [sum], {}));
      if (out === prod) out = sum;
      graph.constants.push(bw);
    }
    nb.nodes = [new Node('p', norm.op, [xin, win], [normed], { ...norm.attrs }), ...nodes];
    nb.outputs = [out];
    const ins = [x, w, ...(u.inputs.slice(1) as Value[]), ...(bw ? [bw] : [])];
    const node = new Node(u.name, 'fused_contraction', ins, [u.outputs[0]!], { body: printGraph(nb) });
    graph.addNode(node, u);
    graph.removeNode(u);
    graph.removeNode(norm);
    fused++;
  }
  if (fused) graph.constants = graph.constants.filter((c) => graph.users(c).length > 0 || graph.outputs.includes(c));
  return fused;
}

/** The pass: level 1, after epilogue fusion (a projection's epilogue is already in its body). */
export const fuseNormProloguePass: Pass = {
  name: 'fuse-norm-prologue',
  minLevel: 1,
  run(graph) {
    return { changed: fuseNormPrologues(graph) > 0 };
  },
};
