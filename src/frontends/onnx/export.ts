/**
 * kiln graph → ONNX: the inverse of the importer. Each kiln op has one inverse mapping (kiln op → ONNX node(s)) in
 * `EXPORTERS`; the contrib forms (MatMulNBits, GatherBlockQuantized, Gelu / FastGelu below opset 20) are written in
 * the com.microsoft domain. A kiln op without an ONNX form (paged attention, the KV-cache write, sampling, attention
 * with kiln's `mask_fill` beyond its plain case, which is written as Where / Softmax / MatMul) is an UnsupportedError
 * naming the node and op.
 *
 * - Graph inputs keep their names and types; a symbolic dim is a `dim_param` (composite dims such as `past+seq` keep
 *   their text, which the importer parses back). Outputs carry their inferred types the same way.
 * - Constants become initializers (`raw_data`, little-endian); initializers no node or output reads are left out.
 *   Initializers of at least `externalData.threshold` bytes go to one external data file (the form every model past
 *   2 GB needs), each at an offset aligned to 64 bytes.
 * - Parameters kiln keeps as attributes but ONNX takes as inputs (reduce / squeeze / unsqueeze axes, split sizes,
 *   CumSum's axis) become small i64 initializers.
 * - Fused nodes (`fused_elementwise`, `fused_contraction`, `fused_injective`) are written as their bodies inlined:
 *   ONNX has no such op, and the body is the node's meaning.
 * - ONNX float attributes are 32-bit: a kiln float attribute (an f64) is rounded to f32 on the way.
 *
 * The opset is the lowest the graph needs (21, or 23 when it holds attention / rotary_embedding, the ops
 * ONNX defines from 23; 24 with attention's nonpad_kv_seqlen), or `opts.opset` (18 at least); forms follow it (RMS norm is RMSNormalization from 23 and
 * SimplifiedLayerNormalization below, GELU the standard Gelu from 20 and com.microsoft Gelu / FastGelu below, SiLU
 * Swish from 24 and Sigmoid · x below).
 */
import type { DType } from '../../../ir/dtype.js';
import { KilnError, UnsupportedError } from '../../../ir/errors.js';
import type { Graph, Node, Value } from '../../../ir/graph.js';
import { fusedBody } from '../../../ir/ops/fused.js';
import { sparseDenseWeight } from '../../../ir/ops/sparse.js';
import '../../../ir/ops/index.js';
import { getOp, resolveAttrs, type Attrs } from '../../../ir/registry.js';
import { dimToString, type Shape } from '../../../ir/shape.js';
import { makeTensor, type Tensor } from '../../../ir/tensor.js';
import type { TensorType } from '../../../ir/types.js';
import { onnxCodeOf } from './dtypes.js';
import { ATTR, encodeModelProto, rawByteLength, tensorRawData } from './encode.js';
import type { ExternalDataReader } from './import.js';
import type { ExternalDataRef } from './proto.js';

export interface ExportOptions {
  /** Default-domain opset (≥ 18). Default: the lowest the graph needs (21, or 23 with attention / rotary). */
  opset?: number;
  /** Graph name in the model (default: the kiln graph's name). */
  graphName?: string;
  /** producer_name (default 'kiln'). */
  producerName?: string;
  /**
   * Initializers of at least `threshold` bytes (default 1024) are stored in the file `location` (default
   * `<model>.data`, relative to the model's directory). Without this option everything is stored in the model, and
   * a model past protobuf's 2 GB limit is a KilnError ('limit') saying to use external data.
   */
  externalData?: { threshold?: number; location?: string };
  /**
   * Where external data goes when `exportOnnx` is called: the byte chunks in file order (offsets already counted),
   * handed over as they are made so a multi-GB model is never held in memory twice. `exportOnnxModel` returns them
   * instead; `exportOnnxFile` writes them to the data file beside the model.
   */
  writeExternal?: (location: string, chunk: Uint8Array) => void;
  /**
   * Most initializer bytes stored in the model itself (default: protobuf's 2 GB limit less 64 MiB for the graph);
   * past it the export is a KilnError ('limit') that says to use external data.
   */
  maxModelBytes?: number;
}

export interface ExportedOnnx {
  /** The ModelProto bytes. */
  model: Uint8Array;
  /** The external data file (absent when every initializer is in the model). */
  external?: { location: string; chunks: Uint8Array[]; size: number };
  /** Opset per domain ('' the default domain). */
  opsets: Map<string, number>;
}

/** protobuf's hard limit on one message (a ModelProto) in bytes. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;
const EXTERNAL_ALIGN = 64;
const DEFAULT_LOCATION = 'model.onnx.data';
const MS = 'com.microsoft';

type AttrProto = Record<string, unknown> & { name: string; type: number };
interface NodeProto {
  name: string;
  op_type: string;
  domain: string;
  input: string[];
  output: string[];
  attribute: AttrProto[];
}

const aInt = (name: string, v: number | boolean): AttrProto => ({ name, type: ATTR.INT, i: Number(v) });
const aFloat = (name: string, v: number): AttrProto => ({ name, type: ATTR.FLOAT, f: v });
const aStr = (name: string, v: string): AttrProto => ({ name, type: ATTR.STRING, s: new TextEncoder().encode(v) });
const aInts = (name: string, v: readonly number[]): AttrProto => ({ name, type: ATTR.INTS, ints: [...v] });
const aDtype = (name: string, v: DType): AttrProto => aInt(name, onnxCodeOf(v));

/** What an op's exporter sees: the node, its resolved attributes, input / output names, and ways to emit. */
export interface ExportContext {
  readonly node: Node;
  /** Attributes with defaults filled (optional ones without a value absent). */
  readonly attrs: Attrs;
  /** Input names ('' for an absent optional input). */
  readonly ins: readonly string[];
  /** Output names. */
  readonly outs: readonly string[];
  /** The default-domain opset being written. */
  readonly opset: number;
  inputType(i: number): TensorType | undefined;
  /** Emit an ONNX node (trailing absent inputs dropped); records the domain's opset need. */
  emit(opType: string, ins: readonly string[], outs: readonly string[], attrs?: AttrProto[], domain?: string): void;
  /** A new i64 initializer; returns its name. */
  i64(values: readonly number[], shape?: readonly number[]): string;
  /** A new initializer holding `t`; returns its name. */
  constant(t: Tensor): string;
  /** A fresh intermediate name. */
  temp(hint: string): string;
  unsupported(message: string): never;
}

type OpExporter = (ctx: ExportContext) => void;

const EXPORTERS = new Map<string, OpExporter>();

/** Register the ONNX form of a kiln op. */
export function exportOp(kilnOp: string, fn: OpExporter): void {
  EXPORTERS.set(kilnOp, fn);
}

export function hasExporter(kilnOp: string): boolean {
  return EXPORTERS.has(kilnOp);
}

// ---- per-op inverse mappings ----

/** Same inputs, same outputs, the given attributes. */
const direct =
  (opType: string, attrs: (ctx: ExportContext) => AttrProto[] = () => [], domain = '') =>
  (ctx: ExportContext) =>
    ctx.emit(opType, ctx.ins, ctx.outs, attrs(ctx), domain);

const ONE_TO_ONE: Record<string, string> = {
  add: 'Add',
  sub: 'Sub',
  mul: 'Mul',
  div: 'Div',
  pow: 'Pow',
  neg: 'Neg',
  abs: 'Abs',
  exp: 'Exp',
  log: 'Log',
  sqrt: 'Sqrt',
  reciprocal: 'Reciprocal',
  tanh: 'Tanh',
  erf: 'Erf',
  sigmoid: 'Sigmoid',
  relu: 'Relu',
  floor: 'Floor',
  ceil: 'Ceil',
  round: 'Round',
  sign: 'Sign',
  sin: 'Sin',
  cos: 'Cos',
  tan: 'Tan',
  asin: 'Asin',
  acos: 'Acos',
  atan: 'Atan',
  softplus: 'Softplus',
  hard_swish: 'HardSwish',
  not: 'Not',
  isnan: 'IsNaN',
  isinf: 'IsInf',
  and: 'And',
  or: 'Or',
  xor: 'Xor',
  equal: 'Equal',
  less: 'Less',
  greater: 'Greater',
  less_equal: 'LessOrEqual',
  greater_equal: 'GreaterOrEqual',
  max: 'Max',
  min: 'Min',
  sum: 'Sum',
  where: 'Where',
  identity: 'Identity',
  clip: 'Clip',
  matmul: 'MatMul',
  expand: 'Expand',
  tile: 'Tile',
  slice: 'Slice',
  range: 'Range',
  size: 'Size',
  dynamic_quantize_linear: 'DynamicQuantizeLinear',
};
for (const [kiln, onnx] of Object.entries(ONE_TO_ONE)) exportOp(kiln, direct(onnx));

const int = (k: string) => (c: ExportContext) => [aInt(k, c.attrs[k] as number | boolean)];
const ints =
  (...ks: string[]) =>
  (c: ExportContext) =>
    ks.map((k) => aInt(k, c.attrs[k] as number | boolean));

exportOp(
  'mod',
  direct('Mod', (c) => [aInt('fmod', c.attrs['fmod'] as boolean)]),
);
exportOp(
  'hard_sigmoid',
  direct('HardSigmoid', (c) => ['alpha', 'beta'].map((k) => aFloat(k, c.attrs[k] as number))),
);
exportOp(
  'leaky_relu',
  direct('LeakyRelu', (c) => [aFloat('alpha', c.attrs['alpha'] as number)]),
);
exportOp(
  'cast',
  direct('Cast', (c) => [aDtype('to', c.attrs['to'] as DType)]),
);
exportOp('gelu', (c) => {
  const approx = c.attrs['approximate'] as string;
  if (c.opset >= 20) c.emit('Gelu', c.ins, c.outs, [aStr('approximate', approx)]);
  else c.emit(approx === 'tanh' ? 'FastGelu' : 'Gelu', c.ins, c.outs, [], MS);
});
exportOp('silu', (c) => {
  if (c.opset >= 24) return c.emit('Swish', c.ins, c.outs);
  const s = c.temp(`${c.outs[0]}_sigmoid`);
  c.emit('Sigmoid', c.ins, [s]);
  c.emit('Mul', [c.ins[0]!, s], c.outs);
});

for (const op of [
  'reduce_sum',
  'reduce_mean',
  'reduce_prod',
  'reduce_sum_square',
  'reduce_l2',
  'reduce_max',
  'reduce_min',
  'reduce_log_sum_exp',
]) {
  const onnx =
    'Reduce' + op.slice('reduce_'.length).replace(/(^|_)([a-z0-9])/g, (_m, _u, ch: string) => ch.toUpperCase());
  exportOp(op, (c) => {
    const axes = c.attrs['axes'] as readonly number[] | undefined;
    c.emit(onnx, [c.ins[0]!, axes ? c.i64(axes) : ''], c.outs, ints('keepdims', 'noop_with_empty_axes')(c));
  });
}
exportOp('argmax', direct('ArgMax', ints('axis', 'keepdims', 'select_last_index')));
exportOp('argmin', direct('ArgMin', ints('axis', 'keepdims', 'select_last_index')));
exportOp('cumsum', (c) =>
  c.emit('CumSum', [c.ins[0]!, c.i64([c.attrs['axis'] as number], [])], c.outs, ints('exclusive', 'reverse')(c)),
);

exportOp('matmul_integer', (c) => {
  if (!c.attrs['trans_b']) return c.emit('MatMulInteger', c.ins, c.outs);
  // kiln's trans_b (b given as [..., N, K]): ONNX has no such attribute, so b is transposed back
  const r = c.inputType(1)!.shape.length;
  const bt = c.temp(`${c.outs[0]}/b_t`);
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [r - 1, r - 2];
  c.emit('Transpose', [c.ins[1]!], [bt], [aInts('perm', perm)]);
  c.emit('MatMulInteger', [c.ins[0]!, bt, ...c.ins.slice(2)], c.outs);
});

exportOp('softmax', direct('Softmax', int('axis')));
exportOp('log_softmax', direct('LogSoftmax', int('axis')));
exportOp(
  'layer_norm',
  direct('LayerNormalization', (c) => [
    aInt('axis', c.attrs['axis'] as number),
    aFloat('epsilon', c.attrs['epsilon'] as number),
    aDtype('stash_type', c.attrs['stash_type'] as DType),
  ]),
);
exportOp('rms_norm', (c) => {
  const attrs = [aInt('axis', c.attrs['axis'] as number), aFloat('epsilon', c.attrs['epsilon'] as number)];
  c.emit(c.opset >= 23 ? 'RMSNormalization' : 'SimplifiedLayerNormalization', c.ins, c.outs, attrs);
});
exportOp(
  'gemm',
  direct('Gemm', (c) => [
    aFloat('alpha', c.attrs['alpha'] as number),
    aFloat('beta', c.attrs['beta'] as number),
    aInt('transA', c.attrs['transA'] as boolean),
    aInt('transB', c.attrs['transB'] as boolean),
  ]),
);
exportOp(
  'einsum',
  direct('Einsum', (c) => [aStr('equation', c.attrs['equation'] as string)]),
);

exportOp('reshape', direct('Reshape', int('allowzero')));
exportOp(
  'transpose',
  direct('Transpose', (c) => (c.attrs['perm'] !== undefined ? [aInts('perm', c.attrs['perm'] as number[])] : [])),
);
for (const [op, onnx] of [
  ['squeeze', 'Squeeze'],
  ['unsqueeze', 'Unsqueeze'],
] as const) {
  exportOp(op, (c) => {
    const axes = c.attrs['axes'] as readonly number[] | undefined;
    c.emit(onnx, [c.ins[0]!, axes ? c.i64(axes) : ''], c.outs);
  });
}
exportOp('flatten', direct('Flatten', int('axis')));
exportOp('concat', direct('Concat', int('axis')));
exportOp('split', (c) => {
  const sizes = c.attrs['split'] as readonly number[] | undefined;
  const axis = aInt('axis', c.attrs['axis'] as number);
  if (sizes) c.emit('Split', [c.ins[0]!, c.i64(sizes)], c.outs, [axis]);
  else c.emit('Split', [c.ins[0]!], c.outs, [axis, aInt('num_outputs', c.outs.length)]);
});
exportOp('gather', direct('Gather', int('axis')));
exportOp('gather_elements', direct('GatherElements', int('axis')));
exportOp('gather_nd', direct('GatherND', int('batch_dims')));
exportOp('trilu', direct('Trilu', int('upper')));
exportOp(
  'shape',
  direct('Shape', (c) => [
    aInt('start', c.attrs['start'] as number),
    ...(c.attrs['end'] !== undefined ? [aInt('end', c.attrs['end'] as number)] : []),
  ]),
);
exportOp('constant', (c) => c.emit('Constant', [], c.outs, [tensorAttr('value', c.attrs['value'] as Tensor)]));
exportOp(
  'constant_of_shape',
  direct('ConstantOfShape', (c) => (c.attrs['value'] ? [tensorAttr('value', c.attrs['value'] as Tensor)] : [])),
);

/**
 * attention with kiln's `mask_fill` (a masked key's logit is the fill, not -inf: what recognize makes of an exporter's
 * Where(mask, scores, fill)) has no ONNX Attention form; its plain case — 4-D, one KV head per query head, no past,
 * not causal, no softcap, a bool mask as long as the keys, only `y` — is written back as the ops it stands for:
 * Where(mask, scale · q·kᵀ, fill), Softmax, · v.
 */
function attentionMaskFill(c: ExportContext): void {
  const why = (m: string): never =>
    c.unsupported(`attention with mask_fill (a kiln attribute: masked logits set to a finite value) ${m}`);
  const [q, k, , mask] = [0, 1, 2, 3].map((i) => c.inputType(i));
  if (!q || !k || q.shape.length !== 4) return why('has an ONNX form only for 4-D q / k / v');
  if (c.ins.slice(4).some((x) => x !== '')) return why('has an ONNX form only without past / nonpad_kv_seqlen');
  if (c.outs.length > 1) return why('has an ONNX form only for the output y alone');
  if (c.attrs['is_causal'] || (c.attrs['softcap'] as number) !== 0) {
    return why('has an ONNX form only without is_causal / softcap');
  }
  if (q.shape[1] !== k.shape[1]) return why('has an ONNX form only with as many KV heads as query heads');
  if (mask?.dtype !== 'bool' || mask.shape[mask.shape.length - 1] !== k.shape[2]) {
    return why('has an ONNX form only with a bool mask as long as the keys');
  }
  const D = q.shape[3]!;
  const scale = (c.attrs['scale'] as number | undefined) ?? (typeof D === 'number' && D > 0 ? 1 / Math.sqrt(D) : NaN);
  if (Number.isNaN(scale)) return why('has an ONNX form only with a scale or a static head size');
  const dt = q.dtype;
  const y = c.outs[0]!;
  const [kt, s, scaled, filled, p] = ['kT', 'scores', 'scaled', 'filled', 'probs'].map((h) => c.temp(`${y}/${h}`));
  c.emit('Transpose', [c.ins[1]!], [kt!], [aInts('perm', [0, 1, 3, 2])]);
  c.emit('MatMul', [c.ins[0]!, kt!], [s!]);
  c.emit('Mul', [s!, c.constant(makeTensor(dt, [], [scale]))], [scaled!]);
  c.emit('Where', [c.ins[3]!, scaled!, c.constant(makeTensor(dt, [], [c.attrs['mask_fill'] as number]))], [filled!]);
  c.emit('Softmax', [filled!], [p!], [aInt('axis', -1)]);
  c.emit('MatMul', [p!, c.ins[2]!], [y]);
}

exportOp('attention', (c) => {
  if (c.attrs['mask_fill'] !== undefined) return attentionMaskFill(c);
  if (c.opset < 23) c.unsupported(`attention is ONNX Attention from opset 23, exporting ${c.opset}`);
  const attrs = [
    aInt('is_causal', c.attrs['is_causal'] as boolean),
    aFloat('softcap', c.attrs['softcap'] as number),
    aInt('qk_matmul_output_mode', c.attrs['qk_matmul_output_mode'] as number),
  ];
  if (c.attrs['scale'] !== undefined) attrs.push(aFloat('scale', c.attrs['scale'] as number));
  for (const k of ['q_num_heads', 'kv_num_heads'])
    if (c.attrs[k] !== undefined) attrs.push(aInt(k, c.attrs[k] as number));
  if (c.attrs['softmax_precision'] !== undefined) {
    attrs.push(aDtype('softmax_precision', c.attrs['softmax_precision'] as DType));
  }
  if (c.ins[6] && c.opset < 24) c.unsupported(`attention with nonpad_kv_seqlen needs opset 24, exporting ${c.opset}`);
  c.emit('Attention', c.ins, c.outs, attrs);
});
exportOp('rotary_embedding', (c) => {
  if (c.opset < 23) c.unsupported(`rotary_embedding is ONNX RotaryEmbedding from opset 23, exporting ${c.opset}`);
  c.emit('RotaryEmbedding', c.ins, c.outs, ints('interleaved', 'rotary_embedding_dim', 'num_heads')(c));
});

exportOp('quantize_linear', (c) => {
  const attrs = [aInt('axis', c.attrs['axis'] as number), aInt('saturate', c.attrs['saturate'] as boolean)];
  const block = c.attrs['block_size'] as number;
  const out = c.attrs['output_dtype'] as DType | undefined;
  const prec = c.attrs['precision'] as DType | undefined;
  if (block !== 0) attrs.push(aInt('block_size', block));
  if (out !== undefined) attrs.push(aDtype('output_dtype', out));
  if (prec !== undefined) {
    if (c.opset < 25) c.unsupported(`quantize_linear precision needs opset 25, exporting ${c.opset}`);
    attrs.push(aDtype('precision', prec));
  }
  c.emit('QuantizeLinear', c.ins, c.outs, attrs);
});
exportOp('dequantize_linear', (c) => {
  const attrs = [aInt('axis', c.attrs['axis'] as number)];
  const block = c.attrs['block_size'] as number;
  const out = c.attrs['output_dtype'] as DType | undefined;
  if (block !== 0) attrs.push(aInt('block_size', block));
  if (out !== undefined) {
    if (c.opset < 23) c.unsupported(`dequantize_linear output_dtype needs opset 23, exporting ${c.opset}`);
    attrs.push(aDtype('output_dtype', out));
  }
  c.emit('DequantizeLinear', c.ins, c.outs, attrs);
});
exportOp('pad', (c) => {
  const mode = c.attrs['mode'] as string;
  if (mode === 'wrap' && c.opset < 19) c.unsupported(`pad mode 'wrap' needs opset 19, exporting ${c.opset}`);
  c.emit('Pad', c.ins, c.outs, [aStr('mode', mode)]);
});
exportOp(
  'scatter_nd',
  direct('ScatterND', (c) => [aStr('reduction', c.attrs['reduction'] as string)]),
);
exportOp(
  'scatter_elements',
  direct('ScatterElements', (c) => [
    aInt('axis', c.attrs['axis'] as number),
    aStr('reduction', c.attrs['reduction'] as string),
  ]),
);
exportOp(
  'conv',
  direct('Conv', (c) => {
    const attrs = [aStr('auto_pad', c.attrs['auto_pad'] as string), aInt('group', c.attrs['group'] as number)];
    for (const k of ['pads', 'strides', 'dilations', 'kernel_shape']) {
      if (c.attrs[k] !== undefined) attrs.push(aInts(k, c.attrs[k] as number[]));
    }
    return attrs;
  }),
);
exportOp('matmul_nbits', direct('MatMulNBits', ints('K', 'N', 'bits', 'block_size'), MS));
exportOp(
  'gather_block_quantized',
  direct('GatherBlockQuantized', ints('gather_axis', 'quantize_axis', 'block_size', 'bits'), MS),
);

/**
 * Sparse weights leave kiln densified (ONNX has no kiln sparse layout): W [K, N] from the constant compressed arrays,
 * in the weight's float dtype, as an initializer; sparse_matmul → MatMul(a, W), sparse_to_dense → Identity(W).
 */
function denseSparseWeight(c: ExportContext, first: number): string {
  const ins = c.node.inputs.slice(first, first + 4);
  if (ins.some((v) => v && !v.data)) c.unsupported('a sparse weight with arrays computed at run time has no ONNX form');
  const { K, N, w } = sparseDenseWeight(
    c.attrs,
    ins.map((v) => v?.data),
    (m) => c.unsupported(m),
  );
  const quantized = Number(c.attrs['bits']) > 0;
  const dt = (quantized ? c.inputType(first + 3) : c.inputType(first))!.dtype;
  return c.constant(makeTensor(dt, [K, N], w));
}
exportOp('sparse_matmul', (c) => c.emit('MatMul', [c.ins[0]!, denseSparseWeight(c, 1)], c.outs));
exportOp('sparse_to_dense', (c) => c.emit('Identity', [denseSparseWeight(c, 0)], c.outs));

function tensorAttr(name: string, t: Tensor): AttrProto {
  return {
    name,
    type: ATTR.TENSOR,
    t: { dims: [...t.shape], data_type: onnxCodeOf(t.dtype), raw_data: tensorRawData(t) },
  };
}

// ---- the exporter ----

/** Ops the default opset must reach 23 for. */
const OPSET_23 = new Set(['attention', 'rotary_embedding']);
const FUSED = new Set(['fused_elementwise', 'fused_contraction', 'fused_reduction', 'fused_injective']);

function irVersionFor(opset: number): number {
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  if (opset === 23) return 11;
  return 12;
}

/** Every node the export writes, fused bodies opened. */
function* allNodes(nodes: readonly Node[]): Generator<Node> {
  for (const n of nodes) {
    if (FUSED.has(n.op)) yield* allNodes(fusedBody(n.attrs['body'] as string, n.name, n.op).nodes);
    else yield n;
  }
}

function defaultOpset(g: Graph): number {
  let opset = 21;
  for (const n of allNodes(g.nodes)) {
    // Attention's nonpad_kv_seqlen input is Attention-24's
    if (n.op === 'attention' && n.inputs[6]) return 24;
    if (OPSET_23.has(n.op)) opset = 23;
  }
  return opset;
}

class Exporter {
  readonly nodes: NodeProto[] = [];
  readonly initializers: Record<string, unknown>[] = [];
  readonly opsets = new Map<string, number>();
  private readonly used = new Set<string>();
  private readonly external: Uint8Array[] = [];
  private externalSize = 0;
  private inlineBytes = 0;
  private counter = 0;

  constructor(
    readonly opset: number,
    private readonly ext: { threshold: number; location: string } | undefined,
    private readonly maxInline: number,
    private readonly sink?: (chunk: Uint8Array) => void,
  ) {
    this.opsets.set('', opset);
  }

  /** Claim `hint` or a suffixed variant of it. */
  claim(hint: string): string {
    let name = hint === '' ? 'v' : hint;
    while (this.used.has(name)) name = `${hint || 'v'}_${++this.counter}`;
    this.used.add(name);
    return name;
  }

  /** Lowest IR version the types written need (4-bit integers are IR 10). */
  minIr = 0;

  noteType(dt: DType): void {
    if (dt === 'i4' || dt === 'u4') this.minIr = Math.max(this.minIr, 10);
  }

  initializer(name: string, t: Tensor): void {
    this.noteType(t.dtype);
    const raw = tensorRawData(t);
    const proto: Record<string, unknown> = { name, dims: [...t.shape], data_type: onnxCodeOf(t.dtype) };
    if (this.ext && raw.length >= this.ext.threshold) {
      const pad = (EXTERNAL_ALIGN - (this.externalSize % EXTERNAL_ALIGN)) % EXTERNAL_ALIGN;
      if (pad) this.pushExternal(new Uint8Array(pad));
      proto['data_location'] = 1;
      proto['external_data'] = [
        { key: 'location', value: this.ext.location },
        { key: 'offset', value: String(this.externalSize) },
        { key: 'length', value: String(raw.length) },
      ];
      this.pushExternal(raw);
    } else {
      proto['raw_data'] = raw;
      this.inlineBytes += raw.length;
      if (this.inlineBytes > this.maxInline) {
        throw new KilnError(
          'limit',
          `the initializers stored in the model pass ${this.maxInline} bytes (at '${name}'), beyond what one ` +
            "protobuf message holds (2 GB): export with external data (ExportOptions.externalData / kiln export's " +
            '--external-data-threshold)',
          { tensor: name, limit: 'protobuf 2 GB' },
        );
      }
    }
    this.initializers.push(proto);
  }

  private pushExternal(b: Uint8Array): void {
    // with a sink the chunks go out as they are made (a multi-GB model is never held twice)
    if (this.sink) this.sink(b);
    else this.external.push(b);
    this.externalSize += b.length;
  }

  externalData(): ExportedOnnx['external'] {
    if (!this.ext || this.externalSize === 0) return undefined;
    return { location: this.ext.location, chunks: this.external, size: this.externalSize };
  }

  /** Export `nodes` with `names` mapping the values they read (and receiving the names of those they define). */
  exportNodes(nodes: readonly Node[], names: Map<Value, string>, prefix: string): void {
    for (const n of nodes) {
      const nodeName = prefix + n.name;
      const ins = n.inputs.map((v) => (v ? names.get(v)! : ''));
      const outs = n.outputs.map((o) => {
        let s = names.get(o);
        if (s === undefined) names.set(o, (s = this.claim(prefix + o.name)));
        return s;
      });
      if (FUSED.has(n.op)) {
        this.inlineFused(n, nodeName, ins, outs);
        continue;
      }
      const fn = EXPORTERS.get(n.op);
      if (!fn) {
        throw new UnsupportedError(`op ${n.op} has no ONNX form (node '${nodeName}')`, { node: nodeName, op: n.op });
      }
      const def = getOp(n.op, { node: nodeName });
      const attrs = resolveAttrs(def, n.attrs, nodeName);
      let k = 0;
      const ctx: ExportContext = {
        node: n,
        attrs,
        ins,
        outs,
        opset: this.opset,
        inputType: (i) => n.inputs[i]?.type,
        emit: (opType, nIns, nOuts, nAttrs = [], domain = '') => {
          const input = [...nIns];
          while (input.length && input[input.length - 1] === '') input.pop();
          if (domain !== '') this.opsets.set(domain, 1);
          this.nodes.push({
            name: this.claimNode(k++ === 0 ? nodeName : `${nodeName}/${opType}`),
            op_type: opType,
            domain,
            input,
            output: [...nOuts],
            attribute: nAttrs.map((a) => (a.type === ATTR.FLOAT ? { ...a, f: Math.fround(a['f'] as number) } : a)),
          });
        },
        i64: (values, shape = [values.length]) => ctx.constant(makeTensor('i64', shape, values)),
        constant: (t) => {
          const name = this.claim(`${nodeName}/${k}_const`);
          this.initializer(name, t);
          return name;
        },
        temp: (hint) => this.claim(hint),
        unsupported: (message) => {
          throw new UnsupportedError(`${message} (node '${nodeName}')`, { node: nodeName, op: n.op });
        },
      };
      fn(ctx);
    }
  }

  private readonly nodeNames = new Set<string>();
  private claimNode(hint: string): string {
    let name = hint;
    while (this.nodeNames.has(name)) name = `${hint}_${++this.counter}`;
    this.nodeNames.add(name);
    return name;
  }

  private inlineFused(n: Node, nodeName: string, ins: readonly string[], outs: readonly string[]): void {
    const body = fusedBody(n.attrs['body'] as string, nodeName, n.op);
    const names = new Map<Value, string>();
    body.inputs.forEach((v, i) => names.set(v, ins[i]!));
    const prefix = `${nodeName}/`;
    const reads = usedValues(body);
    for (const c of body.constants) {
      if (!reads.has(c)) continue;
      const name = this.claim(prefix + c.name);
      names.set(c, name);
      this.initializer(name, c.data!);
    }
    const out = body.outputs[0]!;
    // the body's output takes the node's output name
    if (out.producer) names.set(out, outs[0]!);
    this.exportNodes(body.nodes, names, prefix);
    if (!out.producer) {
      this.nodes.push({
        name: this.claimNode(`${nodeName}/Identity`),
        op_type: 'Identity',
        domain: '',
        input: [names.get(out)!],
        output: [outs[0]!],
        attribute: [],
      });
    }
  }
}

/** Values some node or output reads. */
function usedValues(g: Graph): Set<Value> {
  const s = new Set<Value>(g.outputs);
  for (const n of g.nodes) for (const v of n.inputs) if (v) s.add(v);
  return s;
}

function valueInfo(name: string, t: TensorType, ex?: Exporter): object {
  ex?.noteType(t.dtype);
  return {
    name,
    type: { tensor_type: { elem_type: onnxCodeOf(t.dtype), shape: { dim: shapeDims(t.shape) } } },
  };
}

function shapeDims(s: Shape): object[] {
  return s.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: dimToString(d) }));
}

/**
 * Export a kiln graph as an ONNX model: the ModelProto bytes and, when `opts.externalData` moved initializers out,
 * the external file's contents (write them to `external.location` beside the model). Defaults: the graph's opset
 * (at least 18), external data off (with it on: threshold 1024 bytes).
 *
 * @throws UnsupportedError for an opset below 18, or naming the node for an op (or attribute) with no ONNX form.
 * @throws KilnError (code `limit`, naming the tensor) when the initializers kept inline pass the protobuf limit
 * (2 GB): export with `opts.externalData`.
 */
export function exportOnnxModel(graph: Graph, opts: ExportOptions = {}): ExportedOnnx {
  return exportWith(graph, opts);
}

/** The export; with `sink`, external data chunks are handed to it as they are made instead of kept. */
function exportWith(graph: Graph, opts: ExportOptions, sink?: (chunk: Uint8Array) => void): ExportedOnnx {
  const opset = opts.opset ?? defaultOpset(graph);
  if (!Number.isInteger(opset) || opset < 18) {
    throw new UnsupportedError(`ONNX export writes opset 18 or later, asked for ${opset}`, {});
  }
  const ext = opts.externalData
    ? { threshold: opts.externalData.threshold ?? 1024, location: opts.externalData.location ?? DEFAULT_LOCATION }
    : undefined;
  const ex = new Exporter(opset, ext, opts.maxModelBytes ?? PROTOBUF_LIMIT - (64 << 20), sink);
  const names = new Map<Value, string>();
  for (const v of graph.inputs) names.set(v, ex.claim(v.name));
  const reads = usedValues(graph);
  for (const c of graph.constants) {
    if (!reads.has(c)) continue;
    const name = ex.claim(c.name);
    names.set(c, name);
    ex.initializer(name, c.data!);
  }
  ex.exportNodes(graph.nodes, names, '');
  // an output that is a graph input or an initializer, or that is listed twice, is given its own name
  const outputs: object[] = [];
  const outNames = new Set<string>();
  graph.outputs.forEach((v, i) => {
    let name = names.get(v)!;
    if (!v.producer || outNames.has(name)) {
      const fresh = ex.claim(`${name}_output${i}`);
      ex.nodes.push({
        name: ex.claim(`output${i}/Identity`),
        op_type: 'Identity',
        domain: '',
        input: [name],
        output: [fresh],
        attribute: [],
      });
      name = fresh;
    }
    outNames.add(name);
    outputs.push(valueInfo(name, v.type, ex));
  });
  const inputs = graph.inputs.map((v) => valueInfo(names.get(v)!, v.type, ex));
  const model = encodeModelProto({
    ir_version: Math.max(irVersionFor(opset), ex.minIr),
    producer_name: opts.producerName ?? 'kiln',
    opset_import: [...ex.opsets].map(([domain, version]) => ({ domain, version })),
    graph: {
      name: opts.graphName ?? graph.name,
      node: ex.nodes,
      initializer: ex.initializers,
      input: inputs,
      output: outputs,
    },
  });
  const external = ex.externalData();
  return { model, ...(external ? { external } : {}), opsets: ex.opsets };
}

/**
 * Export a kiln graph as ONNX model bytes. External data (with `opts.externalData`) is handed to
 * `opts.writeExternal` chunk by chunk as it is made; without a writer, a model that has external data is a KilnError.
 *
 * @throws UnsupportedError for an opset below 18, or naming the node for an op (or attribute) with no ONNX form.
 * @throws KilnError (code `limit`, naming the tensor) when the initializers kept inline pass the protobuf limit
 * (2 GB): export with `opts.externalData`.
 * @throws KilnError (code `unsupported`) when external data is produced but `opts.writeExternal` is missing.
 */
export function exportOnnx(graph: Graph, opts: ExportOptions = {}): Uint8Array {
  const location = opts.externalData?.location ?? DEFAULT_LOCATION;
  return exportWith(graph, opts, (chunk) => {
    if (!opts.writeExternal) {
      throw new KilnError(
        'unsupported',
        'external data needs ExportOptions.writeExternal (or use exportOnnxModel)',
        {},
      );
    }
    opts.writeExternal(location, chunk);
  }).model;
}

/**
 * Export to a file (Node only): the model at `path` and, with external data, its file beside it (default location
 * `<basename>.data`).
 *
 * @throws UnsupportedError for an opset below 18, or naming the node for an op (or attribute) with no ONNX form.
 * @throws KilnError (code `limit`, naming the tensor) when the initializers kept inline pass the protobuf limit
 * (2 GB): export with `opts.externalData`.
 */
export async function exportOnnxFile(
  graph: Graph,
  path: string,
  opts: ExportOptions = {},
): Promise<{ modelBytes: number; externalBytes: number; externalPath?: string }> {
  const fs = await import('node:fs');
  const paths = await import('node:path');
  const o: ExportOptions = opts.externalData
    ? {
        ...opts,
        externalData: { ...opts.externalData, location: opts.externalData.location ?? `${paths.basename(path)}.data` },
      }
    : opts;
  const extPath = o.externalData ? paths.join(paths.dirname(path), o.externalData.location!) : '';
  let fd: number | undefined;
  let r: ExportedOnnx;
  try {
    r = exportWith(graph, o, (chunk) => {
      fd ??= fs.openSync(extPath, 'w');
      for (let done = 0; done < chunk.length;) done += fs.writeSync(fd, chunk, done);
    });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  fs.writeFileSync(path, r.model);
  if (!r.external) return { modelBytes: r.model.length, externalBytes: 0 };
  return { modelBytes: r.model.length, externalBytes: r.external.size, externalPath: extPath };
}

/** An external data reader over in-memory files (location → bytes), for importing an export without touching disk. */
export function memoryExternalData(
  files: Readonly<Record<string, Uint8Array | readonly Uint8Array[]>>,
): ExternalDataReader {
  const flat = new Map<string, Uint8Array>();
  for (const [k, v] of Object.entries(files)) {
    if (v instanceof Uint8Array) flat.set(k, v);
    else {
      const all = new Uint8Array(v.reduce((a, c) => a + c.length, 0));
      let o = 0;
      for (const c of v) {
        all.set(c, o);
        o += c.length;
      }
      flat.set(k, all);
    }
  }
  return {
    read(ref: ExternalDataRef, tensor: string): Uint8Array {
      const f = flat.get(ref.location);
      if (!f || ref.offset + ref.length > f.length) {
        throw new KilnError('parse', `external data '${ref.location}' lacks bytes ${ref.offset}+${ref.length}`, {
          tensor,
        });
      }
      return f.subarray(ref.offset, ref.offset + ref.length);
    },
  };
}

/** The bytes an initializer of this type takes (for sizing external data thresholds). */
export function initializerBytes(t: TensorType): number | undefined {
  let n = 1;
  for (const d of t.shape) {
    if (typeof d !== 'number') return undefined;
    n *= d;
  }
  return rawByteLength(t.dtype, n);
}
