/**
 * Merged projections: matmuls that multiply the same activation by different constant weights (attention's Q, K
 * and V; an MLP's gate and up) become one matmul by the weights concatenated along N, once, at compile time, and a
 * split of its result. One kernel reads the activation once instead of once per projection, and the split's outputs
 * are views of the merged result on the devices (no copy kernels).
 *
 * Conditions: `matmul` nodes with the same first operand (rank ≥ 2) and a 2-D constant second operand of one dtype
 * and the same K, with a dense float result; at least two of them. The merged node sits where the first one was.
 * When each projection's only reader adds its own constant bias, the biases are merged as well (one add, which the
 * epilogue fusion then takes into the matmul). Block-quantized projections (`matmul_nbits`, same K / bits / block /
 * scale and zero-point types, no g_idx) merge the same way: their packed rows, scales and zero points concatenated;
 * GGUF block-format projections (`matmul_ggml`, same format and K) by their rows of ggml blocks concatenated.
 */
import { isFloat } from '../../ir/dtype.js';
import { Graph, Node, Value } from '../../ir/graph.js';
import { makeTensor, naturalArray, type Tensor } from '../../ir/tensor.js';
import { tensorType } from '../../ir/types.js';
import type { Pass } from '../context.js';
import { Names } from '../rewrite.js';

function mergeable(n: Node): boolean {
  if (n.op === 'matmul_nbits') return mergeableNBits(n);
  if (n.op === 'matmul_ggml') return mergeableGgml(n);
  if (n.op !== 'matmul' || n.outputs.length !== 1) return false;
  const [a, w] = n.inputs;
  if (!a || !w || !w.isConst || w.type.shape.length !== 2 || a.type.shape.length < 2) return false;
  const y = n.outputs[0]!;
  return isFloat(y.type.dtype) && y.type.layout.kind === 'dense' && w.type.layout.kind === 'dense';
}

/**
 * A block-quantized projection: constant packed data, scales and zero points (if any), no g_idx, no bias, a dense
 * float result. W [N, K] is stored row by row (each row's blocks, scales and zero points on their own), so merging
 * along N concatenates the three arrays — the packed bytes are never unpacked.
 */
function mergeableNBits(n: Node): boolean {
  const [a, b, s, zp, gIdx, bias] = n.inputs;
  if (n.outputs.length !== 1 || !a || !b?.isConst || !s?.isConst || (zp && !zp.isConst) || gIdx || bias) return false;
  const y = n.outputs[0]!;
  return isFloat(y.type.dtype) && y.type.layout.kind === 'dense' && a.type.shape.length >= 1;
}

/** A GGUF block-format projection: constant rows of ggml blocks, a dense float result. */
function mergeableGgml(n: Node): boolean {
  const [a, w] = n.inputs;
  if (n.outputs.length !== 1 || !a || !w?.isConst) return false;
  const y = n.outputs[0]!;
  return isFloat(y.type.dtype) && y.type.layout.kind === 'dense';
}

/** What must agree for two block-quantized projections to merge: K, bits, block size, scale and zero-point types. */
function nbitsKey(n: Node): string {
  if (n.op === 'matmul_ggml') return ['ggml', n.attrs['format'], n.attrs['K']].join('/');
  const [, , s, zp] = n.inputs;
  return [n.attrs['K'], n.attrs['bits'], n.attrs['block_size'], s!.type.dtype, zp?.type.dtype ?? '-'].join('/');
}

/** Constants' data end to end, as a flat tensor of their dtype (shape [Σ numel], or `shape` when given). */
function concatFlat(vs: readonly Value[], shape?: number[]): Tensor {
  const total = vs.reduce((t, v) => t + v.data!.data.length, 0);
  const dtype = vs[0]!.type.dtype;
  const data = naturalArray(dtype, total);
  let at = 0;
  for (const v of vs) {
    data.set(v.data!.data as never, at);
    at += v.data!.data.length;
  }
  return { dtype, shape: shape ?? [total], data };
}

/** One matmul_nbits for a group of block-quantized projections (same K / bits / block): rows concatenated. */
function mergedNBits(members: readonly Node[], names: Names, graph: Graph): { node: Node; widths: number[] } {
  const first = members[0]!;
  const widths = members.map((n) => n.attrs['N'] as number);
  const N = widths.reduce((a, b) => a + b, 0);
  const constant = (i: number, hint: string) => {
    const vs = members.map((n) => n.inputs[i]!);
    const shape0 = vs[0]!.type.shape as number[];
    // the packed data and the scales keep their row-major [N, ...] shapes; u8 zero points are flat
    const shape =
      shape0.length > 1 ? [vs.reduce((t, v) => t + (v.type.shape[0] as number), 0), ...shape0.slice(1)] : undefined;
    const t = concatFlat(vs, shape);
    const v = new Value(names.fresh(`${vs[0]!.name}_${hint}`), tensorType(t.dtype, t.shape, vs[0]!.type.layout), t);
    graph.constants.push(v);
    return v;
  };
  const a = first.inputs[0]!;
  const ins = [a, constant(1, 'merged')];
  if (first.op === 'matmul_nbits') ins.push(constant(2, 'merged'));
  if (first.op === 'matmul_nbits' && first.inputs[3]) ins.push(constant(3, 'merged'));
  const y0 = first.outputs[0]!;
  const y = new Value(names.fresh(`${y0.name}_merged`), tensorType(y0.type.dtype, [...a.type.shape.slice(0, -1), N]));
  const node = new Node(names.fresh(`${first.name}_merged`), first.op, ins, [y], { ...first.attrs, N });
  return { node, widths };
}

/** Weights [K, Nᵢ] side by side: [K, ΣNᵢ], copied row by row in their own (already rounded) element type. */
function concatColumns(ws: readonly Value[]): Tensor {
  const K = ws[0]!.type.shape[0] as number;
  const widths = ws.map((w) => w.type.shape[1] as number);
  const total = widths.reduce((a, b) => a + b, 0);
  const dtype = ws[0]!.type.dtype;
  const data = naturalArray(dtype, K * total);
  let col = 0;
  ws.forEach((w, i) => {
    const src = w.data!.data;
    const n = widths[i]!;
    for (let k = 0; k < K; k++) data.set(src.subarray(k * n, (k + 1) * n) as never, k * total + col);
    col += n;
  });
  return { dtype, shape: [K, total], data };
}

/** The `add` of a constant [N] bias that is a projection's only reader, with that bias. */
function biasOf(graph: Graph, n: Node): { add: Node; bias: Value } | undefined {
  const y = n.outputs[0]!;
  const users = graph.users(y);
  if (users.length !== 1 || users[0]!.op !== 'add' || graph.outputs.includes(y)) return undefined;
  const add = users[0]!;
  const bias = add.inputs[0] === y ? add.inputs[1] : add.inputs[0];
  const N = y.type.shape.at(-1);
  if (!bias || bias === y || !bias.isConst || bias.type.dtype !== y.type.dtype) return undefined;
  if (bias.type.shape.length !== 1 || bias.type.shape[0] !== N) return undefined;
  return { add, bias };
}

/** Merge in place; returns the number of merged groups. */
export function mergeProjections(graph: Graph): number {
  const groups = new Map<Value, Node[]>();
  const nbits = new Map<string, Node[]>(); // block-quantized projections by (activation, geometry)
  const act = new Map<Value, number>();
  for (const n of graph.nodes) {
    if (!mergeable(n)) continue;
    const a = n.inputs[0]!;
    if (n.op === 'matmul_nbits' || n.op === 'matmul_ggml') {
      if (!act.has(a)) act.set(a, act.size);
      const key = `${act.get(a)}:${nbitsKey(n)}`;
      const g = nbits.get(key);
      if (g) g.push(n);
      else nbits.set(key, [n]);
      continue;
    }
    const w = n.inputs[1]!;
    const g = groups.get(a);
    const first = g?.[0]?.inputs[1];
    if (g && first && (first.type.dtype !== w.type.dtype || first.type.shape[0] !== w.type.shape[0])) continue;
    if (g) g.push(n);
    else groups.set(a, [n]);
  }
  const names = new Names(graph);
  let merged = 0;
  for (const members of nbits.values()) {
    if (members.length < 2 || new Set(members.map((n) => n.inputs[1])).size !== members.length) continue;
    const { node, widths } = mergedNBits(members, names, graph);
    const split = new Node(
      names.fresh(`${members[0]!.name}_split`),
      'split',
      [node.outputs[0]!],
      members.map((n) => n.outputs[0]!),
      {
        axis: -1,
        split: widths,
      },
    );
    graph.addNode(node, members[0]);
    graph.addNode(split, members[0]);
    for (const n of members) graph.removeNode(n);
    merged++;
  }
  for (const [a, members] of groups) {
    // distinct weights only (CSE merged identical projections already)
    if (members.length < 2 || new Set(members.map((n) => n.inputs[1])).size !== members.length) continue;
    const ws = members.map((n) => n.inputs[1]!);
    const data = concatColumns(ws);
    const w = new Value(names.fresh(`${ws[0]!.name}_merged`), tensorType(data.dtype, data.shape), data);
    graph.constants.push(w);
    const outShape = [...a.type.shape.slice(0, -1), data.shape[1]!];
    const outType = tensorType(members[0]!.outputs[0]!.type.dtype, outShape);
    const y = new Value(names.fresh(`${members[0]!.outputs[0]!.name}_merged`), outType);
    const mm = new Node(names.fresh(`${members[0]!.name}_merged`), 'matmul', [a, w], [y], {});
    // every projection adding its own bias: the biases are concatenated too, and the split takes the sums' values
    const biases = members.map((n) => biasOf(graph, n));
    const withBias = biases.every((x) => x !== undefined);
    let summed: Value = y;
    const extra: Node[] = [];
    if (withBias) {
      const bs = biases.map((x) => x!.bias);
      const bdata = makeTensor(
        bs[0]!.type.dtype,
        [data.shape[1]!],
        bs.flatMap((x) => Array.from(x.data!.data)),
      );
      const bv = new Value(names.fresh(`${bs[0]!.name}_merged`), tensorType(bdata.dtype, bdata.shape), bdata);
      graph.constants.push(bv);
      summed = new Value(names.fresh(`${y.name}_biased`), outType);
      extra.push(new Node(names.fresh(`${members[0]!.name}_bias`), 'add', [y, bv], [summed], {}));
    }
    const results = members.map((n, i) => (withBias ? biases[i]!.add.outputs[0]! : n.outputs[0]!));
    // the split produces the members' own result values: their readers and graph-output names stay as they are
    const split = new Node(names.fresh(`${members[0]!.name}_split`), 'split', [summed], results, {
      axis: -1,
      split: ws.map((x) => x.type.shape[1] as number),
    });
    graph.addNode(mm, members[0]);
    for (const e of extra) graph.addNode(e, members[0]);
    graph.addNode(split, members[0]);
    for (const n of members) graph.removeNode(n);
    if (withBias) for (const x of biases) graph.removeNode(x!.add);
    merged++;
  }
  if (merged) graph.constants = graph.constants.filter((c) => graph.users(c).length > 0 || graph.outputs.includes(c));
  return merged;
}

/** The pass: level 1, before fusion (a merged product is read through split views, so it takes no epilogue). */
export const mergeProjectionsPass: Pass = {
  name: 'merge-projections',
  minLevel: 1,
  run(graph) {
    return { changed: mergeProjections(graph) > 0 };
  },
};
