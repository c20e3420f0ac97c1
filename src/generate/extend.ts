/**
 * Appending nodes to a built graph (the generation runtime adds its sampling head to a model graph). Types are
 * inferred as in the builder; names are made unique against the graph's values.
 */
import { Graph, Node, Value } from '../../ir/graph.js';
import { inferOp } from '../../ir/infer.js';
import { makeTensor } from '../../ir/tensor.js';
import type { DeviceTensor } from '../runtime/device-tensor.js';
import type { Session } from '../session.js';
import type { Attrs } from '../../ir/registry.js';
import { tensorType } from '../../ir/types.js';

export class GraphExtender {
  private readonly names = new Set<string>();
  private n = 0;
  constructor(readonly graph: Graph) {
    for (const v of graph.values()) this.names.add(v.name);
    for (const nd of graph.nodes) this.names.add(nd.name);
  }

  private fresh(hint: string): string {
    let name = hint;
    while (this.names.has(name)) name = `${hint}_${++this.n}`;
    this.names.add(name);
    return name;
  }

  output(name: string): Value {
    const v = this.graph.outputs.find((o) => o.name === name);
    if (!v) throw new Error(`graph has no output '${name}'`);
    return v;
  }

  /** A new graph input. */
  input(name: string, dtype: 'f32' | 'i64', shape: readonly (number | string)[]): Value {
    if (this.names.has(name)) throw new Error(`graph already has a value named '${name}'`);
    this.names.add(name);
    const v = new Value(name, tensorType(dtype, shape));
    this.graph.inputs.push(v);
    return v;
  }

  constI64(values: readonly number[]): Value {
    const v = new Value(
      this.fresh('c'),
      tensorType('i64', [values.length]),
      makeTensor('i64', [values.length], values),
    );
    this.graph.constants.push(v);
    return v;
  }

  op(op: string, inputs: readonly Value[], attrs: Attrs = {}): Value {
    const name = this.fresh(op);
    const { types, attrs: resolved } = inferOp(
      op,
      name,
      inputs.map((x) => x.type),
      attrs,
      1,
      (i) => inputs[i]?.data,
    );
    const out = new Value(this.fresh(`${op}_out`), types[0]!);
    this.graph.nodes.push(new Node(name, op, [...inputs], [out], resolved));
    return out;
  }

  addOutput(v: Value, name: string): void {
    if (this.names.has(name)) throw new Error(`graph already has a value named '${name}'`);
    this.names.add(name);
    v.name = name;
    this.graph.outputs.push(v);
  }
}

/** Inputs of the sampling head: per-sequence temperature, top-k, top-p and seed ([batch] each). */
export const SAMPLING_INPUTS = ['sample_temperature', 'sample_top_k', 'sample_top_p', 'sample_seed'] as const;

/**
 * The sampling head a generation runtime appends to a language model: `last_logits` [batch, vocab] (the last
 * position's logits), `next_token` [batch] (their argmax) and `sampled_token` [batch] (`sample_token` with the
 * per-sequence parameters and the draw keyed by (seed, position of the last token)). So a step reads back one id per
 * sequence whether it decodes greedily or samples. Models without `position_ids` get a `sample_step` input instead.
 */
export function addSamplingHead(graph: Graph): void {
  const x = new GraphExtender(graph);
  const logits = x.output('logits');
  const rank = logits.type.shape.length;
  const batch = graph.inputs.find((v) => v.name === 'input_ids')?.type.shape[0] ?? 'batch';
  const last = x.op('slice', [logits, x.constI64([-1]), x.constI64([2 ** 31 - 1]), x.constI64([rank - 2])]);
  const row = x.op('squeeze', [last], { axes: [rank - 2] });
  x.addOutput(row, 'last_logits');
  const argmax = x.op('argmax', [row], { axis: -1, keepdims: false });
  x.addOutput(argmax, 'next_token');
  const [t, k, p, seed] = [
    x.input(SAMPLING_INPUTS[0], 'f32', [batch]),
    x.input(SAMPLING_INPUTS[1], 'i64', [batch]),
    x.input(SAMPLING_INPUTS[2], 'f32', [batch]),
    x.input(SAMPLING_INPUTS[3], 'i64', [batch]),
  ];
  const positions = graph.inputs.find((v) => v.name === 'position_ids');
  const step = positions
    ? x.op('squeeze', [x.op('slice', [positions, x.constI64([-1]), x.constI64([2 ** 31 - 1]), x.constI64([1])])], {
        axes: [1],
      })
    : x.input('sample_step', 'i64', [batch]);
  const sampled = x.op('sample_token', [row, t, k, p, seed, step]);
  x.addOutput(sampled, 'sampled_token');
  // the next run's inputs, made on the device: the chosen ids as input_ids [batch, 1] and their positions, so a decode
  // step uploads nothing (the runtime keeps these outputs on the device and feeds them back)
  x.addOutput(x.op('unsqueeze', [argmax], { axes: [1] }), 'next_ids_greedy');
  x.addOutput(x.op('unsqueeze', [sampled], { axes: [1] }), 'next_ids_sampled');
  if (positions) {
    const lastPos = x.op('slice', [positions, x.constI64([-1]), x.constI64([2 ** 31 - 1]), x.constI64([1])]);
    x.addOutput(x.op('add', [lastPos, x.constI64([1])]), 'next_positions');
  }
}

/** The sampling options a row of the head reads (the rest of a generation's options is the runtime's). */
export interface RowSampling {
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
}

/**
 * The sampling head's parameters for a batch, one row per sequence, uploaded once as device tensors (seeds fit i32,
 * as the device holds i64 in 32 bits).
 */
export function uploadSampling(session: Session, rows: readonly RowSampling[]): Record<string, DeviceTensor> {
  const up = (dtype: 'f32' | 'i64', f: (o: RowSampling) => number, name: string) =>
    session.upload(makeTensor(dtype, [rows.length], rows.map(f)), name);
  return {
    [SAMPLING_INPUTS[0]]: up('f32', (o) => o.temperature ?? 0, SAMPLING_INPUTS[0]),
    [SAMPLING_INPUTS[1]]: up('i64', (o) => o.topK ?? 0, SAMPLING_INPUTS[1]),
    [SAMPLING_INPUTS[2]]: up('f32', (o) => o.topP ?? 1, SAMPLING_INPUTS[2]),
    [SAMPLING_INPUTS[3]]: up('i64', (o) => (o.seed ?? 0) % 2 ** 31, SAMPLING_INPUTS[3]),
  };
}
