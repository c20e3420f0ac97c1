/**
 * Norm prologue fusion: an RMS norm whose one reader is a contraction normalizing the operand it contracts
 * (`rms_norm(x, w) · W`, the norm over x's last axis = k) joins that contraction's `fused_contraction` as its first
 * body node. The kernel reads x once: it sums x² along k as it multiplies, scales b's k-th element by w[k], and
 * scales each row's sum by 1 / √(Σx² / K + eps) — (x / rms(x) ⊙ w) · W reassociated, to f32 rounding. One kernel and
 * no normed activation in memory: a LLaMA layer's two norms each ride on the projection after them.
 *
 * Conditions: rms_norm over the last axis, f32 (an f16 norm's result is rounded to f16 before the product), its result read by that contraction only (as operand a, not
 * transposed) and no graph output; the contraction a plain matmul / gemm or a `fused_contraction` without a prologue;
 * the fused node within the kernel's buffer limit. (Layer norm is left alone: its mean would have to be subtracted
 * after the product, which cancels badly when the mean is large against the spread.)
 */
import { Graph, Node, Value } from '../../ir/graph.js';
import { CONTRACTION_OPS, contractionPrologue, fusedBody } from '../../ir/ops/fused.js';
import { parseGraph, printGraph } from '../../ir/text.js';
import type { Pass } from '../context.js';

/** The contraction body `u` computes: its own (a fused_contraction) or a one-node body over its inputs. */
function bodyOf(u: Node): Graph | undefined {
  if (u.op === 'fused_contraction') {
    // a private copy: the parsed-body cache must not see its values given new producers
    const b = parseGraph(
      fusedBody(u.attrs['body'] as string, u.name, 'fused_contraction') && (u.attrs['body'] as string),
    );
    return contractionPrologue(b) ? undefined : b;
  }
  if (!CONTRACTION_OPS.has(u.op) || u.inputs.some((x) => !x)) return undefined;
  const body = new Graph('one');
  body.inputs = u.inputs.map((x, i) => new Value(`u${i}`, x!.type));
  body.nodes = [new Node('n', u.op, body.inputs, [new Value('y', u.outputs[0]!.type)], { ...u.attrs })];
  body.outputs = [body.nodes[0]!.outputs[0]!];
  return body;
}

/** Fuse in place; returns the number of norms fused. */
export function fuseNormPrologues(graph: Graph, maxInputs = 7): number {
  const outputs = new Set(graph.outputs);
  let fused = 0;
  for (const norm of [...graph.nodes]) {
    if (norm.op !== 'rms_norm' || norm.outputs.length !== 1) continue;
    const [x, w] = norm.inputs;
    const y = norm.outputs[0]!;
    const rank = x?.type.shape.length ?? 0;
    const axis = (norm.attrs['axis'] as number | undefined) ?? -1;
    // f32 only: an f16 norm's result is rounded to f16 before the product, a rounding the fused sum cannot repeat
    if (!x || !w || (axis !== -1 && axis !== rank - 1) || y.type.dtype !== 'f32' || outputs.has(y)) continue;
    if (w.type.shape.length !== 1) continue;
    const users = graph.users(y);
    if (users.length !== 1) continue;
    const u = users[0]!;
    const body = bodyOf(u);
    if (!body || u.inputs[0] !== y || u.inputs.slice(1).includes(y) || u.inputs.length + 1 > maxInputs) continue;
    const anchor = body.nodes[0]!;
    if (anchor.op === 'gemm' && anchor.attrs['transA']) continue;
    if (anchor.inputs[0] !== body.inputs[0]) continue;
    // the new body: norm(x, w) then the old body with its input 0 replaced by the norm
    const nb = new Graph('body');
    const xin = new Value('px', x.type);
    const win = new Value('pw', w.type);
    const normed = new Value('pn', y.type);
    nb.inputs = [xin, win, ...body.inputs.slice(1)];
    nb.constants = [...body.constants];
    const map = new Map<Value, Value>([[body.inputs[0]!, normed]]);
    nb.nodes = [
      new Node('p', 'rms_norm', [xin, win], [normed], { ...norm.attrs }),
      ...body.nodes.map(
        (n) =>
          new Node(
            n.name,
            n.op,
            n.inputs.map((v) => (v ? (map.get(v) ?? v) : null)),
            n.outputs,
            { ...n.attrs },
          ),
      ),
    ];
    nb.outputs = body.outputs;
    const node = new Node(u.name, 'fused_contraction', [x, w, ...(u.inputs.slice(1) as Value[])], [u.outputs[0]!], {
      body: printGraph(nb),
    });
    graph.addNode(node, u);
    graph.removeNode(u);
    graph.removeNode(norm);
    fused++;
  }
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
