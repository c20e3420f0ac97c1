/**
 * GGUF block-quantized weights in a model graph. A loader (gguf.ts) gives the model builder canonical float tensors
 * (ggml's dequantization, so every builder and pass sees ordinary weights) and records, for each one that came from
 * a quantized GGUF tensor, the raw ggml blocks it stands for ({@link GgmlWeights}). After the build,
 * {@link useGgmlWeights} swaps every use of such a weight for the packed op — a matmul by a linear weight and the tied
 * head's einsum become `matmul_ggml`, the token-embedding gather `get_rows_ggml` — so the device holds only the ggml
 * bytes (f32 weights never reach it).
 */
import '../../ir/ops/index.js';
import { Graph, Node, Value } from '../../ir/graph.js';
import { GGML_FORMAT_INFO, type GgmlFormat } from '../../ir/ops/ggml.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { tensorType } from '../../ir/types.js';
import { Names } from '../../passes/rewrite.js';

/** The raw ggml blocks behind a canonical weight: W [N, K] (y = a · Wᵀ) as N rows of K / QK blocks. */
export interface GgmlWeight {
  readonly format: GgmlFormat;
  readonly N: number;
  readonly K: number;
  readonly bytes: Uint8Array;
  /**
   * How the canonical tensor relates to W: `linear` — it is Wᵀ [K, N] (kiln's [in, out]: read by matmul);
   * `table` — it is W itself [N, K] (an embedding table: read by gather, or by the tied head's einsum).
   */
  readonly kind: 'linear' | 'table';
}

/** Canonical tensors (by identity) → the ggml blocks they were dequantized from. */
export type GgmlWeights = WeakMap<Tensor, GgmlWeight>;

/** Rows of ggml blocks reordered: output row r is input row `from(r)` (RoPE row permutations of Q / K). */
export function permuteRows(bytes: Uint8Array, rows: number, from: (r: number) => number): Uint8Array {
  const rb = bytes.length / rows;
  const out = new Uint8Array(bytes.length);
  for (let r = 0; r < rows; r++) out.set(bytes.subarray(from(r) * rb, (from(r) + 1) * rb), r * rb);
  return out;
}

/** `P d, v d -> P v` (a tied head contracting with the table's rows). */
function tiedHeadEquation(eq: unknown): boolean {
  const m = /^([a-z]*)([a-z]),([a-z])([a-z])->([a-z]*)$/.exec(String(eq).replace(/\s/g, ''));
  if (!m) return false;
  const [, pre, d, v, d2, out] = m;
  return d === d2 && out === pre! + v && !pre!.includes(v!) && !pre!.includes(d!);
}

/**
 * Swap the graph's uses of recorded weights for `matmul_ggml` / `get_rows_ggml` over their ggml bytes (one u8
 * constant per weight, shared by its uses); float weights left without readers are dropped. Only f32 activations are
 * swapped (an f16 build keeps its converted weights). Returns the number of nodes swapped.
 */
export function useGgmlWeights(graph: Graph, weights: GgmlWeights): number {
  const names = new Names(graph);
  const packed = new Map<Value, Value>();
  const packedOf = (w: Value, g: GgmlWeight) => {
    let v = packed.get(w);
    if (!v) {
      const rowBytes = (g.K / GGML_FORMAT_INFO[g.format].qk) * GGML_FORMAT_INFO[g.format].bytes;
      const t = makeTensor('u8', [g.N, rowBytes], g.bytes);
      v = new Value(names.fresh(`${w.name}.${g.format.toLowerCase()}`), tensorType('u8', t.shape), t);
      graph.constants.push(v);
      packed.set(w, v);
    }
    return v;
  };
  let swapped = 0;
  for (const n of [...graph.nodes]) {
    const w = n.op === 'gather' ? n.inputs[0] : n.inputs[1];
    const g = w?.isConst ? weights.get(w.data!) : undefined;
    if (!g || !w) continue;
    let q: Node | undefined;
    const a = n.op === 'gather' ? undefined : n.inputs[0];
    if (a && a.type.dtype !== 'f32') continue;
    const attrs = { format: g.format, K: g.K, N: g.N };
    if (n.op === 'matmul' && g.kind === 'linear' && n.inputs.length === 2)
      q = new Node(names.fresh(`${n.name}_ggml`), 'matmul_ggml', [a!, packedOf(w, g)], [...n.outputs], attrs);
    else if (n.op === 'einsum' && g.kind === 'table' && tiedHeadEquation(n.attrs['equation']))
      q = new Node(names.fresh(`${n.name}_ggml`), 'matmul_ggml', [a!, packedOf(w, g)], [...n.outputs], attrs);
    else if (
      n.op === 'gather' &&
      g.kind === 'table' &&
      (n.attrs['axis'] ?? 0) === 0 &&
      n.outputs[0]!.type.dtype === 'f32'
    )
      q = new Node(names.fresh(`${n.name}_ggml`), 'get_rows_ggml', [packedOf(w, g), n.inputs[1]!], [...n.outputs], {
        format: g.format,
        K: g.K,
      });
    if (!q) continue;
    graph.addNode(q, n);
    graph.removeNode(n);
    swapped++;
  }
  graph.constants = graph.constants.filter((c) => graph.users(c).length > 0 || graph.outputs.includes(c));
  return swapped;
}
