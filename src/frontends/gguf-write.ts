/**
 * GGUF v3 writer: metadata (typed key / values, arrays), tensor infos (dims fastest-first, ggml type, offsets aligned
 * to `general.alignment` = 32) and the data section — and {@link llamaGguf}, a kiln LLaMA graph (f32, or quantized by
 * passes/quant, or loaded from GGUF) as a llama.cpp-style `llama` file: config metadata, the score-BPE tokenizer, and
 * the tensors under GGUF's names ([out, in] linears, Q / K rows back in interleaved RoPE order).
 *
 * Weights:
 * - float weights: F32, or re-quantized with ggml-style round-to-nearest to any block format (`requantize`; norms stay
 *   F32);
 * - `matmul_ggml` / `get_rows_ggml` weights: their ggml bytes as they are (lossless);
 * - kiln block-quantized weights (`matmul_nbits`, `gather_block_quantized`) where a ggml format holds the same
 *   values: block 32 along K (K whole blocks, no g_idx), and
 *   - 8-bit symmetric (zero point 128) → Q8_0 (i8 = q − 128, d = scale),
 *   - 4-bit symmetric (zero point 8) → Q4_0 (nibble = q, d = scale),
 *   - 4-bit with zero points → Q4_1 (nibble = q, d = scale, m = −zp · scale).
 *   The values are equal when each scale (and Q4_1's m) is an f16 value; otherwise the f16 rounding of d / m changes
 *   each weight by at most 2⁻¹¹ relative (counted in the report as `roundedScales`), or, with `exactScales`, is a typed
 *   error naming the tensor. Other layouts (8-bit with zero points, block ≠ 32, ragged K, g_idx) are an
 *   UnsupportedError naming the tensor.
 */
import { numberToF16Bits, roundF16 } from '../../ir/dtype.js';
import { KilnError, UnsupportedError } from '../../ir/errors.js';
import type { Graph, Node, Value } from '../../ir/graph.js';
import { GGML_FORMAT_INFO, quantizeGgml, type GgmlFormat } from '../../ir/ops/ggml.js';
import type { LlamaConfig } from '../models/config.js';
import { ScoreBpeTokenizer } from '../tokenizers/sentencepiece.js';
import type { Tokenizer } from '../tokenizers/types.js';
import { permuteRows } from './gguf-ggml.js';
import { interleavedToHalves } from './weight-layout.js';

// ---- the container ---------------------------------------------------------------------------------------------

export type GgufMetaType =
  'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64' | 'i64' | 'f64';
const META_TYPE: Record<GgufMetaType, number> = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  u64: 10,
  i64: 11,
  f64: 12,
};

/** One metadata entry: a scalar or an array of scalars (`type` is the element type of an array). */
export interface GgufMeta {
  key: string;
  value: number | boolean | string | readonly (number | string | boolean)[];
  type?: GgufMetaType;
}

/** One tensor: row-major shape; F32 values, or a block format's raw bytes (rows of shape[-1] elements). */
export type GgufTensorOut =
  | { name: string; shape: readonly number[]; type: 'F32'; data: ArrayLike<number> }
  | { name: string; shape: readonly number[]; type: GgmlFormat; data: Uint8Array };

function scalarType(v: number | boolean | string): GgufMetaType {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (Number.isInteger(v)) return v < 0 ? 'i32' : v <= 0xffffffff ? 'u32' : 'u64';
  return 'f32';
}

class Out {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  len = 0;
  private grow(n: number) {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
    this.dv = new DataView(b.buffer);
  }
  num(type: GgufMetaType, v: number | boolean) {
    const n = { u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8, string: 0 }[
      type
    ];
    this.grow(n);
    const x = Number(v);
    const at = this.len;
    if (type === 'u8' || type === 'bool') this.dv.setUint8(at, x);
    else if (type === 'i8') this.dv.setInt8(at, x);
    else if (type === 'u16') this.dv.setUint16(at, x, true);
    else if (type === 'i16') this.dv.setInt16(at, x, true);
    else if (type === 'u32') this.dv.setUint32(at, x, true);
    else if (type === 'i32') this.dv.setInt32(at, x, true);
    else if (type === 'f32') this.dv.setFloat32(at, x, true);
    else if (type === 'f64') this.dv.setFloat64(at, x, true);
    else if (type === 'u64') this.dv.setBigUint64(at, BigInt(x), true);
    else this.dv.setBigInt64(at, BigInt(x), true);
    this.len += n;
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    this.num('u64', b.length);
    this.bytes(b);
  }
  bytes(b: Uint8Array) {
    this.grow(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  pad(alignment: number) {
    const n = (alignment - (this.len % alignment)) % alignment;
    this.bytes(new Uint8Array(n));
  }
  result() {
    return this.buf.slice(0, this.len);
  }
}

/** Bytes of one tensor's data. */
function tensorBytes(t: GgufTensorOut): Uint8Array {
  const n = t.shape.reduce((p, d) => p * d, 1);
  if (t.type === 'F32') {
    if (t.data.length !== n)
      throw new KilnError('shape', `${t.data.length} values for shape [${t.shape}]`, { tensor: t.name });
    return new Uint8Array(Float32Array.from(t.data).buffer);
  }
  const { qk, bytes } = GGML_FORMAT_INFO[t.type];
  const K = t.shape[t.shape.length - 1] ?? 1;
  if (K % qk !== 0)
    throw new KilnError('shape', `${t.type} rows of ${K} are not whole blocks of ${qk}`, { tensor: t.name });
  if (t.data.length !== (n / qk) * bytes)
    throw new KilnError('shape', `${t.data.length} bytes, ${t.type} [${t.shape}] needs ${(n / qk) * bytes}`, {
      tensor: t.name,
    });
  return t.data;
}

/** A GGUF v3 file: the metadata in order, then the tensor infos and their data (each aligned to 32 bytes). */
export function writeGguf(meta: readonly GgufMeta[], tensors: readonly GgufTensorOut[]): Uint8Array {
  const alignment = 32;
  const o = new Out();
  o.bytes(new TextEncoder().encode('GGUF'));
  o.num('u32', 3);
  o.num('u64', tensors.length);
  o.num('u64', meta.length);
  for (const m of meta) {
    o.str(m.key);
    if (Array.isArray(m.value)) {
      const arr = m.value as readonly (number | string | boolean)[];
      const et =
        m.type ??
        (arr.every((x) => typeof x === 'string')
          ? 'string'
          : arr.every((x) => typeof x === 'number' && Number.isInteger(x))
            ? 'i32'
            : 'f32');
      o.num('u32', 9);
      o.num('u32', META_TYPE[et]);
      o.num('u64', arr.length);
      for (const x of arr) {
        if (et === 'string') o.str(String(x));
        else o.num(et, x as number);
      }
    } else {
      const v = m.value as number | boolean | string;
      const t = m.type ?? scalarType(v);
      o.num('u32', META_TYPE[t]);
      if (t === 'string') o.str(String(v));
      else o.num(t, v as number);
    }
  }
  const datas = tensors.map(tensorBytes);
  let off = 0;
  const offsets: number[] = [];
  for (const d of datas) {
    offsets.push(off);
    off = Math.ceil((off + d.length) / alignment) * alignment;
  }
  tensors.forEach((t, i) => {
    o.str(t.name);
    o.num('u32', t.shape.length);
    for (const d of [...t.shape].reverse()) o.num('u64', d);
    o.num('u32', t.type === 'F32' ? 0 : GGML_FORMAT_INFO[t.type].type);
    o.num('u64', offsets[i]!);
  });
  o.pad(alignment);
  datas.forEach((d) => {
    o.bytes(d);
    o.pad(alignment);
  });
  return o.result();
}

// ---- kiln block-quantized weights → ggml blocks --------------------------------------------------------------------

/** A kiln block-quantized weight seen as rows: codes q(n, k), scale(n, j) and zero point zp(n, j) per block j. */
export interface KilnBlocks {
  name: string;
  N: number;
  K: number;
  bits: number;
  block: number;
  q: (n: number, k: number) => number;
  scale: (n: number, j: number) => number;
  /** Absent: the default zero point 2^(bits−1). */
  zp?: (n: number, j: number) => number;
}

/** The ggml format holding a kiln layout's values, or an UnsupportedError naming the tensor and why. */
export function ggmlFormatFor(w: KilnBlocks): 'Q8_0' | 'Q4_0' | 'Q4_1' {
  const no = (why: string): never => {
    throw new UnsupportedError(`GGUF: a kiln ${w.bits}-bit block-${w.block} weight has no ggml format (${why})`, {
      tensor: w.name,
    });
  };
  if (w.block !== 32) no('Q8_0 / Q4_0 / Q4_1 have blocks of 32 along K');
  if (w.K % 32 !== 0) no(`K = ${w.K} is not whole blocks of 32`);
  const half = 2 ** (w.bits - 1);
  let symmetric = true;
  if (w.zp)
    for (let n = 0; n < w.N && symmetric; n++)
      for (let j = 0; j < w.K / 32; j++) if (w.zp(n, j) !== half) symmetric = false;
  if (w.bits === 8) return symmetric ? 'Q8_0' : no('8-bit zero points: Q8_0 is symmetric');
  if (w.bits === 4) return symmetric ? 'Q4_0' : 'Q4_1';
  return no(`${w.bits} bits`);
}

/**
 * A kiln block-quantized weight as ggml blocks (see the module doc for the mapping); `roundedScales` counts the
 * blocks whose d (or m) was not an f16 value.
 */
export function kilnToGgml(
  w: KilnBlocks,
  exactScales = false,
): { format: GgmlFormat; bytes: Uint8Array; roundedScales: number } {
  const format = ggmlFormatFor(w);
  const { bytes: bb } = GGML_FORMAT_INFO[format];
  const nb = w.K / 32;
  const out = new Uint8Array(w.N * nb * bb);
  let rounded = 0;
  /** Store x as f16 at byte o; false when that rounded it. */
  const put = (o: number, x: number) => {
    const exact = roundF16(x) === x;
    if (!exact && exactScales)
      throw new KilnError('verify', `scale ${x} is not an f16 value: ${format} would change the weight`, {
        tensor: w.name,
      });
    const h = numberToF16Bits(x);
    out[o] = h & 255;
    out[o + 1] = h >> 8;
    return exact;
  };
  for (let n = 0; n < w.N; n++) {
    for (let j = 0; j < nb; j++) {
      const o = (n * nb + j) * bb;
      const s = w.scale(n, j);
      let exact = put(o, s);
      const code = (i: number) => w.q(n, j * 32 + i);
      if (format === 'Q8_0') {
        for (let i = 0; i < 32; i++) out[o + 2 + i] = (code(i) - 128) & 255;
      } else {
        const qs = o + (format === 'Q4_1' ? 4 : 2);
        if (format === 'Q4_1') exact = put(o + 2, -w.zp!(n, j) * s) && exact;
        for (let i = 0; i < 16; i++) out[qs + i] = (code(i) & 15) | ((code(i + 16) & 15) << 4);
      }
      if (!exact) rounded++;
    }
  }
  return { format, bytes: out, roundedScales: rounded };
}

// ---- a llama graph → GGUF ------------------------------------------------------------------------------------

export interface LlamaGgufOptions {
  /**
   * Re-quantize float 2-D weights (projections, head, embedding) to this format (ggml-style RTN), or to the format a
   * function returns for each GGUF tensor name (undefined: F32). A weight whose rows are not whole blocks stays F32.
   */
  requantize?: GgmlFormat | ((tensor: string) => GgmlFormat | undefined);
  /** Reject kiln scales that are not f16 values instead of rounding them (see the module doc). */
  exactScales?: boolean;
  /**
   * A kiln block-quantized weight no ggml format holds (e.g. a ragged last block: K not a multiple of 32): `error`
   * (default: the UnsupportedError naming it) or `f32` (its dequantized values written as F32, noted in the report).
   */
  unsupported?: 'error' | 'f32';
  /** general.name. */
  name?: string;
}

export interface LlamaGgufReport {
  tensors: { name: string; type: string; source: string }[];
  /** Blocks whose kiln scale (or Q4_1 m) was rounded to f16. */
  roundedScales: number;
}

type Weight =
  | { kind: 'float'; v: Value }
  | { kind: 'ggml'; format: GgmlFormat; bytes: Uint8Array; N: number; K: number; node: string }
  | { kind: 'kiln'; blocks: KilnBlocks; node: string };

const codeAt = (data: ArrayLike<number>, bits: number, i: number) =>
  bits === 8 ? data[i]! : i & 1 ? data[i >> 1]! >> 4 : data[i >> 1]! & 15;

/** The packed weights of a graph's block-quantized nodes, by the canonical name their constants were made from. */
function packedWeights(graph: Graph): Map<string, Weight> {
  const out = new Map<string, Weight>();
  const canonical = (v: Value, re: RegExp) => v.name.replace(re, '');
  for (const n of graph.nodes) {
    if (n.op === 'matmul_ggml' || n.op === 'get_rows_ggml') {
      const w = n.inputs[n.op === 'matmul_ggml' ? 1 : 0]!;
      if (!w.isConst) continue;
      const format = n.attrs['format'] as GgmlFormat;
      out.set(canonical(w, /\.q\d_[0-9k](_\d+)?$/), {
        kind: 'ggml',
        format,
        bytes: w.data!.data as Uint8Array,
        N: w.type.shape[0] as number,
        K: n.attrs['K'] as number,
        node: n.name,
      });
    } else if (n.op === 'matmul_nbits' || n.op === 'gather_block_quantized') {
      const blocks = kilnBlocks(n);
      if (blocks) out.set(blocks.name, { kind: 'kiln', blocks, node: n.name });
    }
  }
  return out;
}

function kilnBlocks(n: Node): KilnBlocks | undefined {
  const nbits = n.op === 'matmul_nbits';
  const [d, s, z, gIdx] = nbits ? n.inputs.slice(1, 5) : [n.inputs[0], n.inputs[2], n.inputs[3]];
  if (!d?.isConst || !s?.isConst || (z && !z.isConst)) return undefined;
  const name = d.name.replace(/_q[48](_\d+)?$/, '');
  const bits = n.attrs['bits'] as number;
  const block = n.attrs['block_size'] as number;
  if (gIdx) throw new UnsupportedError('GGUF: a weight with g_idx (act-order) has no ggml format', { tensor: name });
  let N: number;
  let K: number;
  let row: number;
  if (nbits) {
    N = n.attrs['N'] as number;
    K = n.attrs['K'] as number;
    row = Math.ceil(K / block) * block;
  } else {
    if ((n.attrs['gather_axis'] ?? 0) !== 0 || d.type.shape.length !== 2 || d.type.dtype !== 'u8')
      throw new UnsupportedError('GGUF: only a [V, D] table blocked along D maps to ggml', { tensor: name });
    N = d.type.shape[0] as number;
    K = ((d.type.shape[1] as number) * 8) / bits;
    row = K;
  }
  const nb = Math.ceil(K / block);
  const data = d.data!.data as ArrayLike<number>;
  const sc = s.data!.data as ArrayLike<number>;
  const zd = z?.data!.data as ArrayLike<number> | undefined;
  const zPacked = z?.type.dtype === 'u8';
  const zRow = nbits ? Math.ceil((nb * bits) / 8) : Math.ceil(nb / (8 / bits));
  return {
    name,
    N,
    K,
    bits,
    block,
    q: (r, k) => codeAt(data, bits, r * row + k),
    scale: (r, j) => Number(sc[r * nb + j]!),
    ...(zd
      ? {
          zp: (r: number, j: number) =>
            zPacked ? codeAt(zd, bits, r * zRow * (8 / bits) + j) : Number(zd[r * nb + j]!),
        }
      : {}),
  };
}

/** The score-BPE vocabulary as GGUF's tokenizer.ggml.* metadata (llama2.c' ' spaces become sentencepiece's '▁'). */
function tokenizerMeta(tok: Tokenizer): GgufMeta[] {
  if (!(tok instanceof ScoreBpeTokenizer))
    throw new UnsupportedError('GGUF: only a score-BPE (llama / sentencepiece) tokenizer is written', {
      limit: 'tokenizer.ggml.model',
    });
  const v = tok.vocabulary;
  const dec = new TextDecoder();
  const tokens: string[] = [];
  const types: number[] = [];
  for (let id = 0; id < v.output.length; id++) {
    const m = v.match[id];
    const isByte = Array.from(v.byteIds).includes(id);
    if (isByte) {
      const b = v.output[id]![0]!;
      tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      types.push(6);
    } else if (m !== null && m !== undefined) {
      tokens.push(v.space === ' ' ? m.replaceAll(' ', '\u2581') : m);
      types.push(1);
    } else if (id === v.unk) {
      tokens.push('<unk>');
      types.push(2);
    } else {
      tokens.push(id === v.bos ? '<s>' : id === v.eos ? '</s>' : dec.decode(v.output[id]) || `<ctrl${id}>`);
      types.push(3);
    }
  }
  const ids: GgufMeta[] = [];
  if (v.bos !== undefined) ids.push({ key: 'tokenizer.ggml.bos_token_id', value: v.bos, type: 'u32' });
  if (v.eos !== undefined) ids.push({ key: 'tokenizer.ggml.eos_token_id', value: v.eos, type: 'u32' });
  if (v.unk !== undefined) ids.push({ key: 'tokenizer.ggml.unknown_token_id', value: v.unk, type: 'u32' });
  return [
    { key: 'tokenizer.ggml.model', value: 'llama' },
    { key: 'tokenizer.ggml.tokens', value: tokens, type: 'string' },
    { key: 'tokenizer.ggml.scores', value: Array.from(v.scores), type: 'f32' },
    { key: 'tokenizer.ggml.token_type', value: types, type: 'i32' },
    { key: 'tokenizer.ggml.add_space_prefix', value: v.addPrefix },
    ...ids,
  ];
}

/**
 * A LLaMA graph built by `buildLlama` (canonical weight names; float, quantized by passes/quant, or loaded from GGUF)
 * as a GGUF v3 `llama` file with its config and tokenizer.
 *
 * @throws UnsupportedError naming the tensor for a kiln quantized layout no ggml format holds, llama3 RoPE scaling,
 * or a tokenizer other than score-BPE; KilnError (code `runtime`) for a weight the graph lacks.
 */
export function llamaGguf(
  graph: Graph,
  config: LlamaConfig,
  tokenizer: Tokenizer | undefined,
  opts: LlamaGgufOptions = {},
): { bytes: Uint8Array; report: LlamaGgufReport } {
  const { dim, hiddenDim, heads, kvHeads, vocab } = config;
  const hd = dim / heads;
  if (config.ropeScaling?.kind === 'llama3')
    throw new UnsupportedError('GGUF writer: llama3 RoPE scaling is not written', { limit: 'rope.scaling' });
  const meta: GgufMeta[] = [
    { key: 'general.architecture', value: 'llama' },
    { key: 'general.name', value: opts.name ?? 'kiln' },
    { key: 'llama.context_length', value: config.maxSeq, type: 'u32' },
    { key: 'llama.embedding_length', value: dim, type: 'u32' },
    { key: 'llama.block_count', value: config.layers, type: 'u32' },
    { key: 'llama.feed_forward_length', value: hiddenDim, type: 'u32' },
    { key: 'llama.attention.head_count', value: heads, type: 'u32' },
    { key: 'llama.attention.head_count_kv', value: kvHeads, type: 'u32' },
    { key: 'llama.rope.dimension_count', value: hd, type: 'u32' },
    { key: 'llama.attention.layer_norm_rms_epsilon', value: config.normEps, type: 'f32' },
    { key: 'llama.rope.freq_base', value: config.ropeTheta, type: 'f32' },
    ...(config.ropeScaling
      ? [
          { key: 'llama.rope.scaling.type', value: 'linear' },
          { key: 'llama.rope.scaling.factor', value: config.ropeScaling.factor, type: 'f32' as const },
        ]
      : []),
    ...(tokenizer ? tokenizerMeta(tokenizer) : []),
  ];
  const packed = packedWeights(graph);
  const consts = new Map(graph.constants.map((c) => [c.name, c]));
  const report: LlamaGgufReport = { tensors: [], roundedScales: 0 };
  const tensors: GgufTensorOut[] = [];
  const missing = (name: string): never => {
    throw new KilnError('runtime', 'the graph has no weight of that canonical name', { tensor: name });
  };
  const floatValues = (name: string) => {
    const c = consts.get(name);
    if (!c || !c.data || (c.type.dtype !== 'f32' && c.type.dtype !== 'f16' && c.type.dtype !== 'bf16')) missing(name);
    return c!.data!.data as ArrayLike<number>;
  };
  /** GGUF rows [rows, cols] (out, in) from a [cols, rows] canonical linear or a [rows, cols] table. */
  const emit2d = (gguf: string, canonical: string, rows: number, cols: number, linear: boolean, rope?: number) => {
    const perm = rope !== undefined ? (r: number) => interleavedToHalves(r, rows / rope) : (r: number) => r;
    const p = packed.get(canonical);
    if (p?.kind === 'ggml') {
      const bytes = rope !== undefined ? permuteRows(p.bytes, rows, perm) : p.bytes;
      tensors.push({ name: gguf, shape: [rows, cols], type: p.format, data: bytes });
      report.tensors.push({ name: gguf, type: p.format, source: `${p.node} (ggml bytes)` });
      return;
    }
    let kilnF32: ((c: number, k: number) => number) | undefined;
    let conv: ReturnType<typeof kilnToGgml> | undefined;
    if (p?.kind === 'kiln') {
      try {
        conv = kilnToGgml({ ...p.blocks, name: gguf }, opts.exactScales);
      } catch (e) {
        if (!(e instanceof UnsupportedError) || opts.unsupported !== 'f32') throw e;
        const { q, scale, zp, block, bits } = p.blocks;
        const half = 2 ** (bits - 1);
        kilnF32 = (c, k) => {
          const j = Math.floor(k / block);
          return (q(c, k) - (zp ? zp(c, j) : half)) * scale(c, j);
        };
        const why = /\(([^()]*)\)/.exec((e as Error).message)?.[1] ?? (e as Error).message;
        report.tensors.push({ name: gguf, type: 'F32', source: `${p.node}: kiln int${bits} dequantized (${why})` });
      }
    }
    if (p?.kind === 'kiln' && conv) {
      const r = conv;
      const bytes = rope !== undefined ? permuteRows(r.bytes, rows, perm) : r.bytes;
      report.roundedScales += r.roundedScales;
      tensors.push({ name: gguf, shape: [rows, cols], type: r.format, data: bytes });
      report.tensors.push({
        name: gguf,
        type: r.format,
        source: `${p.node} (kiln int${p.blocks.bits}${r.roundedScales ? `, ${r.roundedScales} scales rounded to f16` : ', lossless'})`,
      });
      return;
    }
    const x = new Float32Array(rows * cols);
    if (kilnF32) {
      for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) x[r * cols + k] = kilnF32(perm(r), k);
      tensors.push({ name: gguf, shape: [rows, cols], type: 'F32', data: x });
      return;
    }
    const src = floatValues(canonical);
    for (let r = 0; r < rows; r++) {
      const c = perm(r);
      for (let k = 0; k < cols; k++) x[r * cols + k] = Number(linear ? src[k * rows + c]! : src[c * cols + k]!);
    }
    const f = typeof opts.requantize === 'function' ? opts.requantize(gguf) : opts.requantize;
    if (f && cols % GGML_FORMAT_INFO[f].qk === 0) {
      tensors.push({ name: gguf, shape: [rows, cols], type: f, data: quantizeGgml(f, x, rows, cols, gguf) });
      report.tensors.push({ name: gguf, type: f, source: `${canonical} (f32, re-quantized)` });
    } else {
      tensors.push({ name: gguf, shape: [rows, cols], type: 'F32', data: x });
      report.tensors.push({ name: gguf, type: 'F32', source: canonical });
    }
  };
  const emit1d = (gguf: string, canonical: string, n: number) => {
    const v = floatValues(canonical);
    if (v.length !== n) missing(canonical);
    tensors.push({ name: gguf, shape: [n], type: 'F32', data: v });
    report.tensors.push({ name: gguf, type: 'F32', source: canonical });
  };
  emit2d('token_embd.weight', 'tok_embeddings', vocab, dim, false);
  for (let i = 0; i < config.layers; i++) {
    const b = `blk.${i}.`;
    const c = `layers.${i}.`;
    emit1d(b + 'attn_norm.weight', c + 'attention_norm', dim);
    emit2d(b + 'attn_q.weight', c + 'wq', dim, dim, true, heads);
    emit2d(b + 'attn_k.weight', c + 'wk', kvHeads * hd, dim, true, kvHeads);
    emit2d(b + 'attn_v.weight', c + 'wv', kvHeads * hd, dim, true);
    emit2d(b + 'attn_output.weight', c + 'wo', dim, dim, true);
    emit1d(b + 'ffn_norm.weight', c + 'ffn_norm', dim);
    emit2d(b + 'ffn_gate.weight', c + 'w1', hiddenDim, dim, true);
    emit2d(b + 'ffn_up.weight', c + 'w3', hiddenDim, dim, true);
    emit2d(b + 'ffn_down.weight', c + 'w2', dim, hiddenDim, true);
  }
  emit1d('output_norm.weight', 'norm', dim);
  if (!config.tiedHead) emit2d('output.weight', 'output', vocab, dim, true);
  return { bytes: writeGguf(meta, tensors), report };
}
