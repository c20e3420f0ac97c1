/**
 * Epilogue fusion: a matmul / gemm whose one reader is an elementwise group (a `fused_elementwise`, or one fusible
 * op) of the same shape becomes a `fused_contraction` — the bias, activation, residual, scale or mask is applied as
 * each output element is stored, and the product never round-trips through memory. A float reduction (reduce_sum,
 * _mean, _max …) read the same way becomes a `fused_reduction`: the group runs on each row's value before the store.
 *
 * Conditions: the contraction's result is float, not a graph output, read by that one node only; for matmul both
 * operands have rank ≥ 2 (the output is [...batch, M, N]); the reader's output has the contraction's shape (it does
 * not broadcast the product up) and every other value it reads broadcasts to that shape; and the fused node reads at
 * most `maxInputs` values (a kernel binds ≤ 8 buffers).
 *
 * A 2-D product [M, N] may reach its reader through one reshape to [..., N] (exporters run the projections of a
 * [batch, seq, dim] tensor as a gemm on [batch·seq, dim] and reshape back before the bias / residual): the reshape
 * joins the body, and the kernel splits M into the reshaped dims.
 */
import { isFloat } from '../../ir/dtype.js';
import { Graph, Node, Value } from '../../ir/graph.js';
import { CONTRACTION_OPS, fusedBody, REDUCTION_OPS } from '../../ir/ops/fused.js';
import type { Dim } from '../../ir/shape.js';
import { makeTensor } from '../../ir/tensor.js';
import { tensorType } from '../../ir/types.js';
import { printGraph } from '../../ir/text.js';
import type { Pass } from '../context.js';
import { broadcastsTo, fusible, nodeBody } from './elementwise.js';

const sameDims = (a: readonly Dim[], b: readonly Dim[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** The reader's ops as a body fragment: its own body (a fused group) or itself, over its inputs. */
function readerBody(u: Node): { inputs: readonly (Value | null)[]; body: Graph } {
  if (u.op === 'fused_elementwise') return { inputs: u.inputs, body: fusedBody(u.attrs['body'] as string, u.name) };
  return { inputs: u.inputs, body: nodeBody(u) };
}

/**
 * The fused node replacing anchor `a`, the reshape `r` of its product (if any) and its reader `u`, or undefined when
 * the conditions above fail.
 */
function fuse(a: Node, r: Node | undefined, u: Node, outputs: ReadonlySet<Value>, max: number): Node | undefined {
  const product = a.outputs[0]!;
  const x = r ? r.outputs[0]! : product; // what the reader reads
  const shape = x.type.shape;
  if (!sameDims(u.outputs[0]!.type.shape, shape)) return undefined;
  const { inputs: uIns, body: ub } = readerBody(u);
  // the fused node's inputs: the contraction's, then what the reader reads besides the product (deduplicated)
  const extras: Value[] = [];
  for (const v of uIns) {
    if (!v || v === x || extras.includes(v)) continue;
    if (!broadcastsTo(v.type.shape, shape)) return undefined;
    extras.push(v);
  }
  const aIns = a.inputs.filter((v): v is Value => v !== null);
  if (aIns.length !== a.inputs.length || aIns.length + extras.length > max) return undefined;
  if (outputs.has(x) || outputs.has(product)) return undefined;
  // the reshape's target as a body constant (its one symbolic dim as -1), so the body infers standalone
  let target: number[] | undefined;
  if (r) {
    target = shape.map((d) => (typeof d === 'number' ? d : -1));
    if (target.filter((d) => d === -1).length > 1 || target.includes(0)) return undefined;
  }

  const body = new Graph('body');
  const map = new Map<Value, Value>();
  let k = 0;
  const fresh = (v: Value, data = v.data) => new Value(`v${k++}`, v.type, data);
  const ins = [...aIns, ...extras];
  body.inputs = ins.map((v) => fresh(v, undefined));
  const first = aIns.length; // body index of the first extra
  const prod = fresh(product);
  body.nodes.push(new Node('n0', a.op, body.inputs.slice(0, aIns.length), [prod], { ...a.attrs }));
  let read = prod; // the value the reader's body reads for `x`
  if (target) {
    const t = new Value(`v${k++}`, tensorType('i64', [target.length]), makeTensor('i64', [target.length], target));
    body.constants.push(t);
    read = fresh(x);
    body.nodes.push(new Node('nr', 'reshape', [prod, t], [read], {}));
  }
  // the reader's body: its inputs are the (reshaped) product or one of the extras
  ub.inputs.forEach((bv, i) => {
    const outer = uIns[i]!;
    map.set(bv, outer === x ? read : body.inputs[first + extras.indexOf(outer)]!);
  });
  for (const c of ub.constants) {
    const cv = fresh(c);
    map.set(c, cv);
    body.constants.push(cv);
  }
  ub.nodes.forEach((n, i) => {
    const outs = n.outputs.map((o) => {
      const v = fresh(o);
      map.set(o, v);
      return v;
    });
    body.nodes.push(
      new Node(
        `n${i + 1}`,
        n.op,
        n.inputs.map((v) => (v ? map.get(v)! : null)),
        outs,
        { ...n.attrs },
      ),
    );
  });
  body.outputs = [map.get(ub.outputs[0]!)!];
  const op = CONTRACTION_OPS.has(a.op) ? 'fused_contraction' : 'fused_reduction';
  return new Node(u.name, op, ins, [u.outputs[0]!], { body: printGraph(body) });
}

/** Fuse `graph` in place; returns the number of contractions given an epilogue. */
export function fuseEpilogues(graph: Graph, maxInputs = 7): number {
  const outputs = new Set(graph.outputs);
  const replace = new Map<Node, Node | null>(); // reader → fused node; anchor → dropped
  for (const a of graph.nodes) {
    const reduction = REDUCTION_OPS.has(a.op);
    if ((!CONTRACTION_OPS.has(a.op) && !reduction) || a.outputs.length !== 1) continue;
    if (reduction && (a.inputs.length !== 1 || !isFloat(a.inputs[0]!.type.dtype))) continue;
    const x = a.outputs[0]!;
    if (!isFloat(x.type.dtype) || x.type.layout.kind !== 'dense') continue;
    if (a.op === 'matmul' && a.inputs.some((v) => !v || v.type.shape.length < 2)) continue;
    // a body reads the contraction's inputs in order: no absent optional input before a present one
    if (a.op === 'matmul_nbits' && a.inputs.some((v) => !v)) continue;
    const users = graph.users(x);
    if (users.length !== 1) continue;
    let u = users[0]!;
    let r: Node | undefined;
    if (u.op === 'reshape' && x.type.shape.length === 2 && !reduction) {
      // [M, N] → [..., N]: the columns stay the innermost dim, so M splits into the leading dims
      const y = u.outputs[0]!;
      const ru = graph.users(y);
      if (y.type.shape.at(-1) !== x.type.shape[1] || y.type.shape.length < 2 || ru.length !== 1) continue;
      r = u;
      u = ru[0]!;
    }
    if (replace.has(u) || !(u.op === 'fused_elementwise' || fusible(u))) continue;
    const f = fuse(a, r, u, outputs, maxInputs);
    if (!f) continue;
    replace.set(a, null);
    if (r) replace.set(r, null);
    replace.set(u, f);
  }
  if (!replace.size) return 0;
  const kept: Node[] = [];
  for (const n of graph.nodes) {
    const r = replace.get(n);
    if (r === undefined) kept.push(n);
    else if (r) kept.push(r);
  }
  graph.nodes = kept;
  // a reshape's target constant is dead once the reshape moved into a body
  const read = new Set<Value>(graph.outputs);
  for (const n of kept) for (const x of n.inputs) if (x) read.add(x);
  graph.constants = graph.constants.filter((c) => read.has(c));
  return [...replace.values()].filter((r) => r).length;
}

/** The pass: runs at level 1 (the default) and up, after elementwise fusion formed the groups it takes in. */
export const fuseEpiloguePass: Pass = {
  name: 'fuse-epilogue',
  minLevel: 1,
  run(graph) {
    return { changed: fuseEpilogues(graph) > 0 };
  },
};
