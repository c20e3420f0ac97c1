/**
 * The builder: write a graph by hand, with types inferred as you go and errors located at the node you just added.
 *
 * ```ts
 * const b = new GraphBuilder('mlp');
 * const x = b.input('x', 'f32', ['batch', 64]);
 * const w = b.weight('w', makeTensor('f32', [64, 64], data));
 * b.output(b.gelu(b.matmul(x, w)), 'y');
 * const graph = b.build();
 * ```
 */
import type { DType } from './dtype.js';
import { VerifyError } from './errors.js';
import { Graph, Node, Value } from './graph.js';
import { inferOp } from './infer.js';
import { getOp, type Attrs } from './registry.js';
import { isStatic, numel, type Shape } from './shape.js';
import { fromValues, makeTensor, type Tensor } from './tensor.js';
import { tensorType, type Layout, type TensorType } from './types.js';
import { verify } from './verify.js';

/**
 * Builds a {@link Graph} op by op. Every op's output types are inferred when it is added, so a bad shape, dtype or
 * attribute fails there with a {@link VerifyError} naming the node (an unknown op: {@link UnsupportedError}).
 * Sugar methods (`add`, `matmul`, `layerNorm` …) cover the common ops; {@link GraphBuilder.op} applies any registered op.
 */
export class GraphBuilder {
  readonly graph: Graph;
  /**
   * Evaluate nodes whose inputs are all constants (and shape-of-static-type ops) at build time with the reference
   * semantics, so shape computations feeding reshape / slice / expand become constants that inference can read.
   */
  foldConstants = false;
  /** Folds larger than this many elements stay nodes (weights are not duplicated by accident). */
  foldLimit = 1 << 20;
  /** Name hint for the next nodes (an importer sets it to the source node's name so errors point there). */
  nodeHint: string | undefined = undefined;
  private counter = 0;
  private readonly names = new Set<string>();

  /** An empty graph named `name` (default `main`). */
  constructor(name = 'main') {
    this.graph = new Graph(name);
  }

  /** A name derived from `hint` that no value or node uses yet (not reserved until a value takes it). */
  unique(hint: string): string {
    let name = hint;
    while (this.names.has(name)) name = `${hint}_${++this.counter}`;
    return name;
  }

  /** Give `v` the name `name` if no other value has it; returns whether it did. */
  rename(v: Value, name: string): boolean {
    if (this.names.has(name)) return false;
    this.names.delete(v.name);
    v.name = name;
    this.names.add(name);
    return true;
  }

  /** Reserve and return a unique name derived from `hint`. */
  fresh(hint: string): string {
    const name = this.unique(hint);
    this.names.add(name);
    return name;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new VerifyError(`duplicate value name '${name}'`, { tensor: name });
    this.names.add(name);
    return name;
  }

  /**
   * A graph input. Shape dims are numbers or symbol names (`'batch'`, `'seq'`) bound at run time; `layout` defaults
   * to dense.
   *
   * @throws VerifyError when another value already has `name`.
   */
  input(name: string, dtype: DType, shape: Shape, layout?: Layout): Value {
    const v = new Value(this.claim(name), tensorType(dtype, shape, layout));
    this.graph.inputs.push(v);
    return v;
  }

  /**
   * A constant value (weight, initializer, literal).
   *
   * @throws VerifyError when another value already has `name`.
   */
  weight(name: string, data: Tensor, layout?: Layout): Value {
    const v = new Value(this.claim(name), tensorType(data.dtype, data.shape, layout), data);
    this.graph.constants.push(v);
    return v;
  }

  /** A constant from plain numbers; `shape` defaults to 1-D. */
  const(dtype: DType, values: readonly number[], shape: readonly number[] = [values.length], hint = 'c'): Value {
    return this.weight(this.unique(hint), makeTensor(dtype, shape, values));
  }

  /**
   * Marks `v` as a graph output, renamed to `name` when given (an input, a constant or a value already output is
   * routed through an `identity` node instead, so it keeps its own name). Returns the output value.
   *
   * @throws VerifyError when another value already has `name`.
   */
  output(v: Value, name?: string): Value {
    if (name !== undefined && name !== v.name) {
      if (v.producer === undefined || this.graph.outputs.includes(v)) {
        // Inputs and constants keep their names; route through identity to give the output its own name.
        v = this.op('identity', [v], {}, name);
      } else {
        this.names.delete(v.name);
        v.name = this.claim(name);
      }
    }
    this.graph.outputs.push(v);
    return v;
  }

  /**
   * Apply a registered op with one output (`null` for a skipped optional input); `name` names the output.
   *
   * @throws UnsupportedError for an unknown op.
   * @throws VerifyError naming the node for wrong input counts, unknown / missing / ill-typed attributes, or shapes and
   * dtypes the op's inference rejects.
   */
  op(op: string, inputs: readonly (Value | null)[], attrs: Attrs = {}, name?: string): Value {
    return this.opN(op, inputs, attrs, 1, name ? [name] : undefined)[0]!;
  }

  /**
   * Apply a registered op with `numOutputs` outputs (named by `names` where given). With `foldConstants`, an op whose
   * inputs are all constants is evaluated now and its outputs are constants. Errors as {@link GraphBuilder.op}.
   */
  opN(
    op: string,
    inputs: readonly (Value | null)[],
    attrs: Attrs = {},
    numOutputs = 1,
    names?: readonly string[],
  ): Value[] {
    const nodeName = this.fresh(this.nodeHint ?? `${op}_${this.graph.nodes.length}`);
    const {
      types,
      attrs: resolved,
      symbolic,
    } = inferOp(
      op,
      nodeName,
      inputs.map((v) => v?.type),
      attrs,
      numOutputs,
      (i) => inputs[i]?.data,
      (i) => inputs[i]?.symbolic,
    );
    if (this.foldConstants) {
      const folded = this.tryFold(op, nodeName, inputs, resolved, types);
      if (folded) return folded.map((t, i) => this.weight(names?.[i] ?? this.unique(`t${this.counter++}`), t));
    }
    const outs = types.map((t, i) => {
      const v = new Value(names?.[i] ? this.claim(names[i]!) : this.fresh(`t${this.counter++}`), t);
      v.symbolic = symbolic[i];
      return v;
    });
    this.graph.nodes.push(new Node(nodeName, op, [...inputs], outs, { ...attrs }));
    return outs;
  }

  private tryFold(
    op: string,
    nodeName: string,
    inputs: readonly (Value | null)[],
    attrs: Attrs,
    types: readonly TensorType[],
  ): Tensor[] | undefined {
    const def = getOp(op);
    const fail = (message: string): never => {
      throw new VerifyError(message, { node: nodeName, op });
    };
    if (def.foldFromTypes) {
      const r = def.foldFromTypes({
        node: nodeName,
        op,
        inputs: inputs.map((v) => v?.type),
        attrs,
        numOutputs: types.length,
        constValue: (i) => inputs[i]?.data,
        symbolicValue: (i) => inputs[i]?.symbolic,
        fail,
      });
      if (r) return r;
    }
    if (!inputs.every((v) => v === null || v.isConst)) return undefined;
    // a quantized weight's dequantize stays: the qdq-fold pass packs it (passes/quant/qdq.ts) instead of an f32 copy
    if (op === 'dequantize_linear') return undefined;
    if (!types.every((t) => isStatic(t.shape) && numel(t.shape) <= this.foldLimit)) return undefined;
    const outs = def.reference(
      inputs.map((v) => v?.data),
      attrs,
      { node: nodeName, op, numOutputs: types.length, outputDtypes: types.map((t) => t.dtype), fail },
    );
    return outs.map((t, i) => fromValues(types[i]!.dtype, t.shape, t.data));
  }

  /**
   * Verify and return the graph.
   *
   * @throws VerifyError naming the node or tensor when the graph is not well formed (see {@link verify}).
   */
  build(): Graph {
    verify(this.graph);
    return this.graph;
  }

  // ---- sugar for the common ops of a transformer block (errors as `op`: VerifyError naming the node) ----
  /** `a + b` with NumPy broadcasting. */
  add = (a: Value, b: Value): Value => this.op('add', [a, b]);
  /** `a − b` with NumPy broadcasting. */
  sub = (a: Value, b: Value): Value => this.op('sub', [a, b]);
  /** `a · b` elementwise with NumPy broadcasting. */
  mul = (a: Value, b: Value): Value => this.op('mul', [a, b]);
  /** `a / b` elementwise with NumPy broadcasting (integer division truncates toward zero). */
  div = (a: Value, b: Value): Value => this.op('div', [a, b]);
  /** Matrix product with NumPy matmul semantics (batch dims broadcast; 1-D operands promoted). */
  matmul = (a: Value, b: Value): Value => this.op('matmul', [a, b]);
  /** GELU: exact (erf, the default) or the `tanh` approximation. */
  gelu = (x: Value, approximate: 'none' | 'tanh' = 'none'): Value => this.op('gelu', [x], { approximate });
  /** SiLU (swish): `x · sigmoid(x)`. */
  silu = (x: Value): Value => this.op('silu', [x]);
  /** `max(x, 0)`. */
  relu = (x: Value): Value => this.op('relu', [x]);
  /** `eˣ` elementwise. */
  exp = (x: Value): Value => this.op('exp', [x]);
  /** Hyperbolic tangent elementwise. */
  tanh = (x: Value): Value => this.op('tanh', [x]);
  /** Converts to dtype `to` (floats round to nearest even; integers wrap). */
  cast = (x: Value, to: DType): Value => this.op('cast', [x], { to });
  /** Softmax along `axis` (default the last). */
  softmax = (x: Value, axis = -1): Value => this.op('softmax', [x], { axis });
  /** Permutes the dims: output dim i is input dim `perm[i]`. */
  transpose = (x: Value, perm: readonly number[]): Value => this.op('transpose', [x], { perm });
  /** Reshape to `shape` (ONNX rules: 0 copies the input dim, −1 is inferred); the shape becomes an i64 constant. */
  reshape = (x: Value, shape: readonly number[]): Value =>
    this.op('reshape', [x, this.const('i64', shape, [shape.length], 'shape')]);
  /** Layer normalization over the dims from `axis` (default −1) on, ε = 1e-5 by default; `bias` may be null. */
  layerNorm = (x: Value, scale: Value, bias: Value | null, epsilon = 1e-5, axis = -1): Value =>
    this.op('layer_norm', bias ? [x, scale, bias] : [x, scale], { axis, epsilon });
  /** RMS normalization over the dims from `axis` (default −1) on, ε = 1e-6 by default, times `scale`. */
  rmsNorm = (x: Value, scale: Value, epsilon = 1e-6, axis = -1): Value =>
    this.op('rms_norm', [x, scale], { axis, epsilon });
  /** Sum over `axes` (reduced dims kept as 1 unless `keepdims` is false). */
  reduceSum = (x: Value, axes: readonly number[], keepdims = true): Value =>
    this.op('reduce_sum', [x], { axes, keepdims });
  /** Mean over `axes` (reduced dims kept as 1 unless `keepdims` is false). */
  reduceMean = (x: Value, axes: readonly number[], keepdims = true): Value =>
    this.op('reduce_mean', [x], { axes, keepdims });
  /** Rows of `data` along `axis` (default 0) picked by `indices` (negative indices count from the end). */
  gather = (data: Value, indices: Value, axis = 0): Value => this.op('gather', [data, indices], { axis });
  /** Joins `xs` along `axis` (every other dim must agree). */
  concat = (xs: readonly Value[], axis: number): Value => this.op('concat', xs, { axis });
  /** Splits `x` along `axis` into pieces of the given `sizes` (which must sum to that dim). */
  split = (x: Value, sizes: readonly number[], axis: number): Value[] =>
    this.opN('split', [x], { axis, split: sizes }, sizes.length);
}
