/**
 * Megatron-style tensor parallelism over kiln's LLaMA / GPT-2 builder graphs (canonical weight names, linear weights
 * [in, out]). The graph is replayed once per rank through a fresh builder:
 *
 * - column-parallel: Q / K / V by heads (GQA-aware: rank r keeps KV heads [r·kv/tp, (r+1)·kv/tp) and the query heads
 *   of those groups), GPT-2's fused `c_attn` split segment by segment (Q | K | V, each by heads, bias alike), gate / up
 *   (`w1`, `w3`, `mlp.c_fc`) by columns; attention / rotary head counts and split sizes divided by tp;
 * - row-parallel: `wo`, `w2`, `attn.c_proj`, `mlp.c_proj` by rows, an `all_reduce` right after the matmul (a GPT-2
 *   bias is added once, after the sum);
 * - LM head: `output` split by columns (vocabulary), a tied head contracts with the rank's rows of the embedding
 *   table; `all_gather` of the logits along the vocabulary axis; vocabulary-parallel embedding: each rank looks up the ids
 *   in its rows of the table (`tok_embeddings` / `wte`; others masked to zero) and an `all_reduce` sums the rows;
 * - KV cache inputs / outputs sharded by heads: `past_key_i` / `past_value_i` have kvHeads/tp heads.
 *
 * Each rank's graph is verified by the builder and runs alone wherever its collectives are served (interpretRanks,
 * MPI ranks).
 */
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError, type ErrorLocation } from '../../ir/errors.js';
import type { Graph, Value } from '../../ir/graph.js';
import '../../ir/ops/index.js';
import { fromValues, type Tensor } from '../../ir/tensor.js';

export interface TensorParallelOptions {
  /** Number of ranks. */
  readonly tp: number;
}

type Role =
  | { kind: 'col'; segments: readonly number[] } // last axis, each segment split in tp parts
  | { kind: 'row' } // axis 0 split in tp parts; all_reduce after the matmul reading it
  | { kind: 'vocab-col' } // [dim, vocab] head: last axis, all_gather after
  | { kind: 'vocab-rows' }; // [vocab, dim] tied table read by an einsum: rows, all_gather after

function roleOf(name: string, t: Tensor): Role | undefined {
  const last = t.shape.at(-1)!;
  if (/^layers\.\d+\.(wq|wk|wv|w1|w3)$/.test(name)) return { kind: 'col', segments: [last] };
  if (/^layers\.\d+\.(wo|w2)$/.test(name)) return { kind: 'row' };
  if (/^h\.\d+\.attn\.c_attn\.(weight|bias)$/.test(name))
    return { kind: 'col', segments: [last / 3, last / 3, last / 3] };
  if (/^h\.\d+\.mlp\.c_fc\.(weight|bias)$/.test(name)) return { kind: 'col', segments: [last] };
  if (/^h\.\d+\.(attn|mlp)\.c_proj\.weight$/.test(name)) return { kind: 'row' };
  if (name === 'output') return { kind: 'vocab-col' };
  return undefined;
}

/** Slice of `t` along `axis`: for each segment [start, start+len), rank r's part of it, concatenated. */
function shardAxis(
  t: Tensor,
  axis: number,
  segments: readonly number[],
  tp: number,
  rank: number,
  what: string,
): Tensor {
  const shape = t.shape;
  let outer = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i]!;
  let inner = 1;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i]!;
  const d = shape[axis]!;
  const picks: number[] = [];
  let start = 0;
  for (const s of segments) {
    if (s % tp !== 0) {
      throw new KilnError(
        'shape',
        `tensor parallel: a segment of ${s} along axis ${axis} is not divisible by tp ${tp}`,
        {
          tensor: what,
        },
      );
    }
    const part = s / tp;
    for (let j = 0; j < part; j++) picks.push(start + rank * part + j);
    start += s;
  }
  const outShape = [...shape];
  outShape[axis] = picks.length;
  const out = new Float64Array(outer * picks.length * inner);
  let k = 0;
  for (let o = 0; o < outer; o++) {
    for (const p of picks) {
      const base = (o * d + p) * inner;
      for (let i = 0; i < inner; i++) out[k++] = Number(t.data[base + i]!);
    }
  }
  return fromValues(t.dtype, outShape, out);
}

const divide = (n: number, tp: number, what: string, loc: ErrorLocation): number => {
  if (n % tp !== 0) throw new KilnError('shape', `tensor parallel: ${what} ${n} is not divisible by tp ${tp}`, loc);
  return n / tp;
};

/** Rank `rank`'s graph of `graph` split `tp` ways. */
export function shardTensorParallelRank(graph: Graph, tp: number, rank: number): Graph {
  if (!Number.isInteger(tp) || tp < 1) throw new KilnError('attribute', `tensor parallel: tp must be ≥ 1, got ${tp}`);
  if (rank < 0 || rank >= tp)
    throw new KilnError('attribute', `tensor parallel: rank ${rank} out of range for tp ${tp}`);
  const b = new GraphBuilder(`${graph.name}.tp${tp}.r${rank}`);
  const map = new Map<Value, Value>();
  const roles = new Map<Value, Role>();
  const coll = { world_size: tp, rank };
  for (const v of graph.inputs) {
    if (v.name === 'block_table') {
      throw new KilnError('unsupported', 'tensor parallel: paged KV caches are not sharded yet', { tensor: v.name });
    }
    let shape = v.type.shape;
    if (/^past_(key|value)_\d+$/.test(v.name)) {
      const h = shape[1];
      if (typeof h !== 'number') throw new KilnError('shape', 'cache heads must be static', { tensor: v.name });
      shape = [shape[0]!, divide(h, tp, 'KV heads', { tensor: v.name }), ...shape.slice(2)];
    }
    map.set(v, b.input(v.name, v.type.dtype, shape, v.type.layout));
  }
  for (const c of graph.constants) {
    const role = roleOf(c.name, c.data!);
    let data = c.data!;
    if (role?.kind === 'col') data = shardAxis(data, data.shape.length - 1, role.segments, tp, rank, c.name);
    else if (role?.kind === 'row') data = shardAxis(data, 0, [data.shape[0]!], tp, rank, c.name);
    else if (role?.kind === 'vocab-col') data = shardAxis(data, 1, [data.shape[1]!], tp, rank, c.name);
    const nv = b.weight(c.name, data, c.type.layout);
    map.set(c, nv);
    if (role) roles.set(c, role);
  }
  // Tied tables read by an einsum head: the rank's rows, as a second constant (the lookup keeps the whole table).
  const tiedRows = new Map<Value, Value>();
  const m = (v: Value | null): Value | null => (v ? map.get(v)! : null);
  const rowsOf = (w: Value): Value => {
    let rows = tiedRows.get(w);
    if (!rows) {
      rows = b.weight(`${w.name}.vocab_shard`, shardAxis(w.data!, 0, [w.data!.shape[0]!], tp, rank, w.name));
      tiedRows.set(w, rows);
    }
    return rows;
  };
  for (const n of graph.nodes) {
    let attrs = n.attrs;
    let inputs = n.inputs.map(m);
    let after: 'all_reduce' | 'all_gather' | undefined;
    const w = n.inputs[1];
    const role = w ? roles.get(w) : undefined;
    if (n.op === 'matmul' && role?.kind === 'row') after = 'all_reduce';
    if (n.op === 'matmul' && role?.kind === 'vocab-col') after = 'all_gather';
    if (n.op === 'einsum' && w?.data && n.attrs['equation'] === 'bsd,vd->bsv') {
      inputs = [inputs[0]!, rowsOf(w)];
      after = 'all_gather';
    }
    const table = n.inputs[0];
    if (
      n.op === 'gather' &&
      (n.attrs['axis'] ?? 0) === 0 &&
      table?.data &&
      (table.name === 'tok_embeddings' || table.name === 'wte') &&
      table.data.shape[0]! % tp === 0
    ) {
      // vocabulary-parallel lookup: rows this rank holds, zeros elsewhere, summed over the ranks
      const part = table.data.shape[0]! / tp;
      const ids = inputs[1]!;
      const idt = ids.type.dtype;
      const o = n.outputs[0]!;
      const nm = (s: string) => b.unique(`${o.name}.${s}`);
      const lo = b.const(idt, [rank * part], [], nm('vocab_lo'));
      const hi = b.const(idt, [(rank + 1) * part], [], nm('vocab_hi'));
      const zero = b.const(idt, [0], [], nm('zero'));
      const ge = b.op('greater_equal', [ids, lo], {}, nm('ge'));
      const mine = b.op('and', [ge, b.op('less', [ids, hi], {}, nm('lt'))], {}, nm('mine'));
      const local = b.op('where', [mine, b.op('sub', [ids, lo], {}, nm('shifted')), zero], {}, nm('local'));
      const rows = b.op('gather', [rowsOf(table), local], { axis: 0 }, nm('rows'));
      const un = b.op('unsqueeze', [mine], { axes: [-1] }, nm('mine3'));
      const keep = b.op('cast', [un], { to: table.type.dtype }, nm('keep'));
      const masked = b.op('mul', [rows, keep], {}, `${o.name}.partial`);
      map.set(o, b.opN('all_reduce', [masked], coll, 1, [o.name])[0]!);
      continue;
    }
    if (n.op === 'attention') {
      attrs = {
        ...attrs,
        q_num_heads: divide(attrs['q_num_heads'] as number, tp, 'query heads', { node: n.name, op: n.op }),
        kv_num_heads: divide(attrs['kv_num_heads'] as number, tp, 'KV heads', { node: n.name, op: n.op }),
      };
    }
    if (n.op === 'rotary_embedding' && typeof attrs['num_heads'] === 'number' && attrs['num_heads'] > 0) {
      attrs = { ...attrs, num_heads: divide(attrs['num_heads'], tp, 'rotary heads', { node: n.name, op: n.op }) };
    }
    if (n.op === 'split' && Array.isArray(attrs['split']) && isSharded(n.inputs[0]!)) {
      attrs = {
        ...attrs,
        split: (attrs['split'] as number[]).map((s) => divide(s, tp, 'split size', { node: n.name, op: n.op })),
      };
    }
    if (!after) {
      const outs = b.opN(
        n.op,
        inputs,
        attrs,
        n.outputs.length,
        n.outputs.map((o) => o.name),
      );
      n.outputs.forEach((o, i) => map.set(o, outs[i]!));
      continue;
    }
    const o = n.outputs[0]!;
    const partial = b.opN(n.op, inputs, attrs, 1, [`${o.name}.partial`])[0]!;
    const attrsC = after === 'all_gather' ? { ...coll, axis: -1 } : coll;
    map.set(o, b.opN(after, [partial], attrsC, 1, [o.name])[0]!);
  }
  for (const o of graph.outputs) b.output(map.get(o)!, o.name);
  const g = b.build();
  // tables replaced by their rank's rows (embedding, head) are dropped when nothing reads them any more
  const used = new Set<Value>(g.outputs);
  for (const n of g.nodes) for (const x of n.inputs) if (x) used.add(x);
  g.constants = g.constants.filter((c) => used.has(c));
  return g;

  function isSharded(v: Value): boolean {
    // A value computed (through elementwise ops) from a column-parallel projection.
    const seen = new Set<Value>();
    const walk = (x: Value): boolean => {
      if (seen.has(x)) return false;
      seen.add(x);
      const r = roles.get(x);
      if (r?.kind === 'col') return true;
      const p = x.producer;
      if (!p) return false;
      if (p.op === 'matmul' && roles.get(p.inputs[1]!)?.kind === 'row') return false;
      return p.inputs.some((i) => i !== null && walk(i));
    };
    return walk(v);
  }
}

/** One graph per rank (see the module comment). */
export function shardTensorParallel(graph: Graph, opts: TensorParallelOptions): Graph[] {
  return Array.from({ length: opts.tp }, (_, r) => shardTensorParallelRank(graph, opts.tp, r));
}
