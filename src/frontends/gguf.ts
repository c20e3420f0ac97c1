/**
 * GGUF (llama.cpp's container), versions 2 and 3: magic "GGUF", u32 version, u64 tensor count, u64 metadata count,
 * metadata (u64-length strings, typed values, nested arrays), tensor infos (name, dims listed fastest-first, ggml
 * type, offset into the data section), then the data section at the next multiple of `general.alignment` (32).
 *
 * F32 / F16 / BF16 / F64 and integer tensors become kiln tensors (dims reversed to a row-major shape). The block formats
 * Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K (ir/ops/ggml.ts) load as their raw blocks ({@link GgufFile.ggml}) or,
 * through {@link GgufFile.tensor}, as f32 by ggml's dequantization; other quantized types are recognized (their byte
 * ranges are checked) but loading one is an UnsupportedError naming the tensor and type.
 * {@link ggufModel} maps `llama` and `gpt2` files to a config, canonical weights and the embedded tokenizer; a `llama`
 * model's quantized projections, output head and token embedding run packed (`matmul_ggml` / `get_rows_ggml`, see
 * gguf-ggml.ts) in the graph `buildLlama` makes from them.
 */
import type { DType } from '../../ir/dtype.js';
import { KilnError, ParseError, UnsupportedError } from '../../ir/errors.js';
import { dequantizeGgml, isGgmlFormat, type GgmlFormat } from '../../ir/ops/ggml.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { weightMap, type Gpt2Config, type LlamaConfig, type ModelConfig, type WeightSource } from '../models/config.js';
import { byteLevelBpeTokenizer } from '../tokenizers/bpe.js';
import { bytePieceValue, ScoreBpeTokenizer } from '../tokenizers/sentencepiece.js';
import type { Tokenizer } from '../tokenizers/types.js';
import { ByteReader, decodeUtf8, f32Values, halfValues } from './bytes.js';
import { permuteRows, useGgmlWeights, type GgmlWeight } from './gguf-ggml.js';
import { floatTensor, interleavedToHalves, transposeLinear } from './weight-layout.js';

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  readonly name: string;
  /** Dims as stored (fastest-varying first). */
  readonly dims: readonly number[];
  /** Row-major shape (dims reversed). */
  readonly shape: readonly number[];
  readonly type: number;
  readonly typeName: string;
  /** Byte offset from the start of the data section. */
  readonly offset: number;
  readonly byteSize: number;
}

export interface GgufFile {
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensorInfos: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** Absolute offset of the data section. */
  readonly dataOffset: number;
  readonly bytes: Uint8Array;
  /**
   * The tensor's values (F32 views of the file where aligned; the block formats dequantized to f32 as ggml does); a
   * typed error for other quantized types or unknown names.
   */
  tensor(name: string): Tensor;
  /** A block-format tensor's raw ggml bytes (a view of the file) and format; undefined for any other type. */
  ggml(name: string): { format: GgmlFormat; bytes: Uint8Array } | undefined;
}

const FORMAT = 'GGUF';
const MAGIC = 0x46554747; // "GGUF" as a little-endian u32

/** ggml types: name, elements per block, bytes per block, kiln dtype when loadable. */
const GGML_TYPES: Record<number, [string, number, number, DType?]> = {
  0: ['F32', 1, 4, 'f32'],
  1: ['F16', 1, 2, 'f16'],
  2: ['Q4_0', 32, 18],
  3: ['Q4_1', 32, 20],
  6: ['Q5_0', 32, 22],
  7: ['Q5_1', 32, 24],
  8: ['Q8_0', 32, 34],
  9: ['Q8_1', 32, 36],
  10: ['Q2_K', 256, 84],
  11: ['Q3_K', 256, 110],
  12: ['Q4_K', 256, 144],
  13: ['Q5_K', 256, 176],
  14: ['Q6_K', 256, 210],
  15: ['Q8_K', 256, 292],
  16: ['IQ2_XXS', 256, 66],
  17: ['IQ2_XS', 256, 74],
  18: ['IQ3_XXS', 256, 98],
  19: ['IQ1_S', 256, 50],
  20: ['IQ4_NL', 32, 18],
  21: ['IQ3_S', 256, 110],
  22: ['IQ2_S', 256, 82],
  23: ['IQ4_XS', 256, 136],
  24: ['I8', 1, 1, 'i8'],
  25: ['I16', 1, 2, 'i16'],
  26: ['I32', 1, 4, 'i32'],
  27: ['I64', 1, 8, 'i64'],
  28: ['F64', 1, 8, 'f64'],
  29: ['IQ1_M', 256, 56],
  30: ['BF16', 1, 2, 'bf16'],
  34: ['TQ1_0', 256, 54],
  35: ['TQ2_0', 256, 66],
  39: ['MXFP4', 32, 17],
};

/** Metadata value types → reader. */
function readValue(r: ByteReader, type: number, key: string, depth: number): GgufValue {
  switch (type) {
    case 0:
      return r.u8(key);
    case 1:
      return r.i8(key);
    case 2:
      return r.u16(key);
    case 3:
      return r.i16(key);
    case 4:
      return r.u32(key);
    case 5:
      return r.i32(key);
    case 6:
      return r.f32(key);
    case 7:
      return r.u8(key) !== 0;
    case 8:
      return readString(r, key);
    case 9: {
      if (depth > 8) r.fail(`metadata '${key}' nests arrays deeper than 8`, undefined, 'array depth');
      const elemType = r.u32(`${key} element type`);
      const n = r.u64(`${key} length`);
      // every element takes at least one byte: a count past the bytes left is malformed, whatever the type
      if (n > r.remaining) r.fail(`metadata '${key}' claims ${n} elements, ${r.remaining} bytes remain`);
      const out: GgufValue[] = new Array<GgufValue>();
      for (let i = 0; i < n; i++) out.push(readValue(r, elemType, key, depth + 1));
      return out;
    }
    case 10: {
      const v = r.u64Big(key);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case 11: {
      const v = r.i64Big(key);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case 12:
      return r.f64(key);
    default:
      return r.fail(`metadata '${key}' has unknown value type ${type}`);
  }
}

function readString(r: ByteReader, what: string): string {
  const n = r.u64(`length of ${what}`);
  return decodeUtf8(r.take(n, what), what, FORMAT);
}

/** Shortest decimal that rounds to the same f32 (9.999999747e-6 → 1e-5): how the writer meant an f32 hyperparameter. */
function f32Decimal(x: number): number {
  for (let p = 1; p <= 9; p++) {
    const v = Number(x.toPrecision(p));
    if (Math.fround(v) === x) return v;
  }
  return x;
}

/**
 * Parses a GGUF file's header, metadata and tensor table; tensor data is decoded on {@link GgufFile.tensor}.
 *
 * @throws ParseError for a bad magic, a version other than 2 or 3, or a truncated / malformed header, metadata or
 * tensor table.
 */
export function parseGguf(bytes: Uint8Array): GgufFile {
  const r: ByteReader = new ByteReader(bytes, FORMAT);
  const magic = r.u32('magic');
  if (magic !== MAGIC) r.fail(`bad magic 0x${magic.toString(16)} (expected "GGUF")`);
  const version = r.u32('version');
  if (version !== 2 && version !== 3) {
    throw new ParseError(`${FORMAT}: version ${version} is not supported (2, 3)`, { limit: 'version' });
  }
  const nTensors = r.u64('tensor count');
  const nKv = r.u64('metadata count');
  // a key-value pair takes at least 12 bytes, a tensor info at least 28: reject impossible counts up front
  if (nKv * 12 > r.remaining) r.fail(`metadata count ${nKv} cannot fit in the file`, undefined, 'metadata count');
  if (nTensors * 28 > r.remaining) r.fail(`tensor count ${nTensors} cannot fit in the file`, undefined, 'tensor count');
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = readString(r, `metadata key ${i}`);
    const type = r.u32(`type of '${key}'`);
    let v = readValue(r, type, key, 0);
    if (type === 6) v = f32Decimal(v as number);
    metadata.set(key, v);
  }
  const al = metadata.get('general.alignment') ?? 32;
  if (typeof al !== 'number' || !Number.isInteger(al) || al <= 0 || al > 2 ** 20) {
    r.fail(`general.alignment ${String(al)} is not a positive integer`, undefined, 'general.alignment');
  }
  const alignment = al;
  const infos: GgufTensorInfo[] = [];
  const byName = new Map<string, GgufTensorInfo>();
  for (let i = 0; i < nTensors; i++) {
    const name = readString(r, `tensor name ${i}`);
    const nDims = r.u32('dim count');
    if (nDims > 8) r.fail(`${nDims} dims (GGML_MAX_DIMS is 4)`, name, 'dims');
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(r.u64(`dim ${d} of '${name}'`));
    const type = r.u32(`type of '${name}'`);
    const offset = r.u64(`offset of '${name}'`);
    const t = GGML_TYPES[type];
    if (!t) r.fail(`unknown ggml type ${type}`, name);
    const [typeName, block, blockBytes] = t!;
    const elems = dims.reduce((a, b) => a * b, 1);
    if (dims.length > 0 && dims[0]! % block !== 0) r.fail(`${typeName} rows of ${dims[0]} are not whole blocks`, name);
    const byteSize = (elems / block) * blockBytes;
    if (byName.has(name)) r.fail('tensor is listed twice', name);
    const info = { name, dims, shape: [...dims].reverse(), type, typeName, offset, byteSize };
    infos.push(info);
    byName.set(name, info);
  }
  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  const dataLen = bytes.length - dataOffset;
  for (const t of infos) {
    if (!(t.offset + t.byteSize <= dataLen)) {
      throw new ParseError(
        `${FORMAT}: data [${t.offset}, ${t.offset + t.byteSize}) is past the ${Math.max(0, dataLen)} data bytes`,
        { tensor: t.name, limit: 'file size' },
      );
    }
  }
  return {
    version,
    metadata,
    tensorInfos: infos,
    alignment,
    dataOffset,
    bytes,
    tensor(name) {
      const info = byName.get(name);
      if (!info) throw new KilnError('runtime', `${FORMAT} file has no tensor`, { tensor: name });
      return loadTensor(bytes, dataOffset + info.offset, info);
    },
    ggml(name) {
      const info = byName.get(name);
      if (!info || !isGgmlFormat(info.typeName)) return undefined;
      const at = dataOffset + info.offset;
      return { format: info.typeName, bytes: bytes.subarray(at, at + info.byteSize) };
    },
  };
}

function loadTensor(bytes: Uint8Array, at: number, info: GgufTensorInfo): Tensor {
  const dtype = GGML_TYPES[info.type]![3];
  const n = info.byteSize / GGML_TYPES[info.type]![2];
  const { name, shape } = info;
  if (isGgmlFormat(info.typeName)) {
    const K = info.dims[0] ?? 1;
    const fail = (m: string): never => {
      throw new ParseError(`${FORMAT}: ${m}`, { tensor: name });
    };
    const values = dequantizeGgml(
      info.typeName,
      bytes,
      info.byteSize / (GGML_TYPES[info.type]![2] * (K / GGML_TYPES[info.type]![1])),
      K,
      fail,
      at,
    );
    return floatTensor('f32', shape, Float32Array.from(values), name);
  }
  if (dtype === undefined) {
    throw new UnsupportedError(`${FORMAT}: quantized type ${info.typeName} is not supported yet`, { tensor: name });
  }
  switch (dtype) {
    case 'f32':
      return floatTensor('f32', shape, f32Values(bytes, at, n), name);
    case 'f16':
    case 'bf16':
      return floatTensor(dtype, shape, halfValues(bytes, at, n, dtype), name);
    default: {
      const dv = new DataView(bytes.buffer, bytes.byteOffset + at, info.byteSize);
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        if (dtype === 'f64') out[i] = dv.getFloat64(i * 8, true);
        else if (dtype === 'i8') out[i] = dv.getInt8(i);
        else if (dtype === 'i16') out[i] = dv.getInt16(i * 2, true);
        else if (dtype === 'i32') out[i] = dv.getInt32(i * 4, true);
        else {
          const v = dv.getBigInt64(i * 8, true);
          if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
            throw new KilnError('limit', `${FORMAT}: element ${i} = ${v} is beyond 2^53`, {
              tensor: name,
              limit: 'i64 exact to 2^53',
            });
          }
          out[i] = Number(v);
        }
      }
      return makeTensor(dtype, shape, out, { tensor: name });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Models

export interface GgufModel {
  readonly config: ModelConfig;
  readonly weights: WeightSource;
  /** The embedded tokenizer, when the file has one. */
  readonly tokenizer: Tokenizer | undefined;
}

function meta(f: GgufFile, key: string): GgufValue | undefined {
  return f.metadata.get(key);
}

function metaInt(f: GgufFile, key: string, fallback?: number): number {
  const v = meta(f, key) ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new ParseError(
      `${FORMAT}: ${v === undefined ? 'missing' : `bad value ${String(v)} for`} metadata '${key}' (a positive integer)`,
      { limit: key },
    );
  }
  return v;
}

function metaNum(f: GgufFile, key: string, fallback: number): number {
  const v = meta(f, key) ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ParseError(`${FORMAT}: bad value ${String(v)} for metadata '${key}'`, { limit: key });
  }
  return v;
}

/** A tensor of the file with the expected row-major shape. */
function expectTensor(f: GgufFile, name: string, shape: readonly number[]): Tensor {
  if (!f.tensorInfos.some((t) => t.name === name)) {
    throw new ParseError(`${FORMAT}: missing tensor (expected shape [${shape}])`, { tensor: name });
  }
  const t = f.tensor(name);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new ParseError(`${FORMAT}: shape [${t.shape}] does not match the metadata (expected [${shape}])`, {
      tensor: name,
    });
  }
  return t;
}

/**
 * Config, canonical weights and tokenizer of a GGUF `llama` or `gpt2` model (bytes are parsed with
 * {@link parseGguf} first).
 *
 * @throws UnsupportedError for another architecture, a tokenizer model other than llama / gpt2, or (naming the tensor)
 * a quantized tensor type kiln does not decode.
 * @throws ParseError for missing or malformed metadata (naming the key) or a missing tensor / one whose shape
 * contradicts the metadata (naming the tensor).
 */
export function ggufModel(file: GgufFile | Uint8Array): GgufModel {
  const f = file instanceof Uint8Array ? parseGguf(file) : file;
  const arch = meta(f, 'general.architecture');
  const tokenizer = ggufTokenizer(f);
  if (arch === 'llama') return { ...ggufLlama(f), tokenizer };
  if (arch === 'gpt2') return { ...ggufGpt2(f), tokenizer };
  throw new UnsupportedError(`${FORMAT}: architecture ${JSON.stringify(arch)} is not supported (llama, gpt2)`, {
    limit: 'general.architecture',
  });
}

function embeddingVocab(f: GgufFile, dim: number): number {
  const info = f.tensorInfos.find((t) => t.name === 'token_embd.weight');
  if (!info || info.shape.length !== 2 || info.shape[1] !== dim) {
    throw new ParseError(`${FORMAT}: token embedding missing or not [vocab, ${dim}]`, { tensor: 'token_embd.weight' });
  }
  return info.shape[0]!;
}

function ggufLlama(f: GgufFile): { config: LlamaConfig; weights: WeightSource } {
  const k = (s: string) => `llama.${s}`;
  const dim = metaInt(f, k('embedding_length'));
  const hidden = metaInt(f, k('feed_forward_length'));
  const layers = metaInt(f, k('block_count'));
  const heads = metaInt(f, k('attention.head_count'));
  const kvHeads = metaInt(f, k('attention.head_count_kv'), heads);
  if (dim % heads !== 0 || heads % kvHeads !== 0 || (dim / heads) % 2 !== 0) {
    throw new ParseError(`${FORMAT}: embedding ${dim} with ${heads} heads / ${kvHeads} kv heads`, { limit: 'heads' });
  }
  const hd = dim / heads;
  const vocab = embeddingVocab(f, dim);
  const scalingType = meta(f, k('rope.scaling.type'));
  const factor = meta(f, k('rope.scaling.factor'));
  const config: LlamaConfig = {
    arch: 'llama',
    dim,
    hiddenDim: hidden,
    layers,
    heads,
    kvHeads,
    vocab,
    maxSeq: metaInt(f, k('context_length'), 2048),
    normEps: metaNum(f, k('attention.layer_norm_rms_epsilon'), 1e-5),
    ropeTheta: metaNum(f, k('rope.freq_base'), 10000),
    ...(scalingType === 'linear' && typeof factor === 'number' && factor > 0
      ? { ropeScaling: { kind: 'linear' as const, factor } }
      : {}),
    tiedHead: !f.tensorInfos.some((t) => t.name === 'output.weight'),
  };
  const m = new Map<string, Tensor>();
  const packed = new WeakMap<Tensor, GgmlWeight>();
  // GGUF linears are [out, in] row-major; llama.cpp's converter put Q/K rows in interleaved RoPE order
  const linear = (canonical: string, name: string, out: number, inn: number, ropeHeads?: number) => {
    const t = transposeLinear(expectTensor(f, name, [out, inn]), name, ropeHeads);
    m.set(canonical, t);
    const q = f.ggml(name);
    if (!q) return;
    // canonical column c is GGUF row r with c = interleavedToHalves(r): W's row c is that row's blocks
    let bytes = q.bytes;
    if (ropeHeads !== undefined) {
      const hd = out / ropeHeads;
      const from = new Int32Array(out);
      for (let r = 0; r < out; r++) from[interleavedToHalves(r, hd)] = r;
      bytes = permuteRows(q.bytes, out, (c) => from[c]!);
    }
    packed.set(t, { format: q.format, N: out, K: inn, bytes, kind: 'linear' });
  };
  const emb = expectTensor(f, 'token_embd.weight', [vocab, dim]);
  m.set('tok_embeddings', emb);
  const embQ = f.ggml('token_embd.weight');
  if (embQ) packed.set(emb, { format: embQ.format, N: vocab, K: dim, bytes: embQ.bytes, kind: 'table' });
  for (let i = 0; i < layers; i++) {
    const b = `blk.${i}.`;
    const c = `layers.${i}.`;
    m.set(c + 'attention_norm', expectTensor(f, b + 'attn_norm.weight', [dim]));
    linear(c + 'wq', b + 'attn_q.weight', dim, dim, heads);
    linear(c + 'wk', b + 'attn_k.weight', kvHeads * hd, dim, kvHeads);
    linear(c + 'wv', b + 'attn_v.weight', kvHeads * hd, dim);
    linear(c + 'wo', b + 'attn_output.weight', dim, dim);
    m.set(c + 'ffn_norm', expectTensor(f, b + 'ffn_norm.weight', [dim]));
    linear(c + 'w1', b + 'ffn_gate.weight', hidden, dim);
    linear(c + 'w3', b + 'ffn_up.weight', hidden, dim);
    linear(c + 'w2', b + 'ffn_down.weight', dim, hidden);
  }
  m.set('norm', expectTensor(f, 'output_norm.weight', [dim]));
  if (!config.tiedHead) linear('output', 'output.weight', vocab, dim);
  const weights = weightMap(m, 'GGUF llama model');
  return { config, weights: { ...weights, finishGraph: (g) => void useGgmlWeights(g, packed) } };
}

function ggufGpt2(f: GgufFile): { config: Gpt2Config; weights: WeightSource } {
  const dim = metaInt(f, 'gpt2.embedding_length');
  const heads = metaInt(f, 'gpt2.attention.head_count');
  if (dim % heads !== 0) throw new ParseError(`${FORMAT}: embedding ${dim} with ${heads} heads`, { limit: 'heads' });
  const config: Gpt2Config = {
    arch: 'gpt2',
    dim,
    hiddenDim: metaInt(f, 'gpt2.feed_forward_length', 4 * dim),
    layers: metaInt(f, 'gpt2.block_count'),
    heads,
    vocab: embeddingVocab(f, dim),
    maxSeq: metaInt(f, 'gpt2.context_length'),
    normEps: metaNum(f, 'gpt2.attention.layer_norm_epsilon', 1e-5),
  };
  const { hiddenDim: hidden, vocab, maxSeq } = config;
  const m = new Map<string, Tensor>();
  const plain = (canonical: string, name: string, shape: number[]) => m.set(canonical, expectTensor(f, name, shape));
  // llama.cpp's converter stores GPT-2's Conv1D weights transposed to [out, in], like every GGUF linear
  const linear = (canonical: string, name: string, out: number, inn: number) =>
    m.set(canonical, transposeLinear(expectTensor(f, name, [out, inn]), name));
  plain('wte', 'token_embd.weight', [vocab, dim]);
  plain('wpe', 'position_embd.weight', [maxSeq, dim]);
  for (let i = 0; i < config.layers; i++) {
    const b = `blk.${i}.`;
    const h = `h.${i}.`;
    plain(h + 'ln_1.weight', b + 'attn_norm.weight', [dim]);
    plain(h + 'ln_1.bias', b + 'attn_norm.bias', [dim]);
    linear(h + 'attn.c_attn.weight', b + 'attn_qkv.weight', 3 * dim, dim);
    plain(h + 'attn.c_attn.bias', b + 'attn_qkv.bias', [3 * dim]);
    linear(h + 'attn.c_proj.weight', b + 'attn_output.weight', dim, dim);
    plain(h + 'attn.c_proj.bias', b + 'attn_output.bias', [dim]);
    plain(h + 'ln_2.weight', b + 'ffn_norm.weight', [dim]);
    plain(h + 'ln_2.bias', b + 'ffn_norm.bias', [dim]);
    linear(h + 'mlp.c_fc.weight', b + 'ffn_up.weight', hidden, dim);
    plain(h + 'mlp.c_fc.bias', b + 'ffn_up.bias', [hidden]);
    linear(h + 'mlp.c_proj.weight', b + 'ffn_down.weight', dim, hidden);
    plain(h + 'mlp.c_proj.bias', b + 'ffn_down.bias', [dim]);
  }
  plain('ln_f.weight', 'output_norm.weight', [dim]);
  plain('ln_f.bias', 'output_norm.bias', [dim]);
  return { config, weights: weightMap(m, 'GGUF gpt2 model') };
}

// ---------------------------------------------------------------------------------------------------------------
// Tokenizers

function metaArray(f: GgufFile, key: string, length?: number): GgufValue[] {
  const v = meta(f, key);
  if (!Array.isArray(v) || (length !== undefined && v.length !== length)) {
    throw new ParseError(`${FORMAT}: metadata '${key}' is not an array${length === undefined ? '' : ` of ${length}`}`, {
      limit: key,
    });
  }
  return v;
}

function optionalId(f: GgufFile, key: string, vocab: number): number | undefined {
  const v = meta(f, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= vocab) {
    throw new ParseError(`${FORMAT}: '${key}' = ${String(v)} is not a token id`, { limit: key });
  }
  return v;
}

/** sentencepiece token types (tokenizer.ggml.token_type). */
const TT = { normal: 1, unknown: 2, control: 3, user: 4, unused: 5, byte: 6 } as const;

/** The embedded tokenizer (`tokenizer.ggml.model` "llama" or "gpt2"), or undefined when the file has none. */
export function ggufTokenizer(f: GgufFile): Tokenizer | undefined {
  const model = meta(f, 'tokenizer.ggml.model');
  if (model === undefined) return undefined;
  const tokens = metaArray(f, 'tokenizer.ggml.tokens');
  if (tokens.some((t) => typeof t !== 'string')) {
    throw new ParseError(`${FORMAT}: tokenizer.ggml.tokens holds a non-string`, { limit: 'tokenizer.ggml.tokens' });
  }
  const pieces = tokens as string[];
  const n = pieces.length;
  const types =
    meta(f, 'tokenizer.ggml.token_type') === undefined ? undefined : metaArray(f, 'tokenizer.ggml.token_type', n);
  const typeOf = (id: number) => (types ? Number(types[id]) : TT.normal);
  const bos = optionalId(f, 'tokenizer.ggml.bos_token_id', n);
  const eos = optionalId(f, 'tokenizer.ggml.eos_token_id', n);
  const unk = optionalId(f, 'tokenizer.ggml.unknown_token_id', n);
  if (model === 'llama') {
    const scoresMeta =
      meta(f, 'tokenizer.ggml.scores') === undefined ? undefined : metaArray(f, 'tokenizer.ggml.scores', n);
    const scores = new Float64Array(n);
    for (let i = 0; i < n; i++) scores[i] = scoresMeta ? Number(scoresMeta[i]) : 0;
    const enc = new TextEncoder();
    const byteIds = new Int32Array(256).fill(-1);
    const match: (string | null)[] = [];
    const output: Uint8Array[] = [];
    for (let id = 0; id < n; id++) {
      const p = pieces[id]!;
      const t = typeOf(id);
      const b = t === TT.byte ? bytePieceValue(p) : undefined;
      if (b !== undefined) {
        if (byteIds[b]! < 0) byteIds[b] = id;
        match.push(null);
        output.push(Uint8Array.of(b));
      } else if (t === TT.normal || t === TT.user) {
        match.push(p);
        output.push(enc.encode(p.replaceAll('\u2581', ' ')));
      } else {
        match.push(null);
        output.push(t === TT.unknown ? enc.encode(p) : new Uint8Array(0));
      }
    }
    const prefix = meta(f, 'tokenizer.ggml.add_space_prefix');
    return new ScoreBpeTokenizer({
      match,
      output,
      scores,
      byteIds,
      space: '\u2581',
      addPrefix: prefix === undefined ? true : prefix === true,
      bos,
      eos,
      unk,
    });
  }
  if (model === 'gpt2') {
    const merges = metaArray(f, 'tokenizer.ggml.merges');
    if (merges.some((m) => typeof m !== 'string')) {
      throw new ParseError(`${FORMAT}: tokenizer.ggml.merges holds a non-string`, { limit: 'tokenizer.ggml.merges' });
    }
    const control = new Set<number>();
    for (let id = 0; id < n; id++) if (typeOf(id) === TT.control) control.add(id);
    return byteLevelBpeTokenizer({ tokens: pieces, merges: merges as string[], bos, eos, control });
  }
  throw new UnsupportedError(`${FORMAT}: tokenizer model ${JSON.stringify(model)} is not supported (llama, gpt2)`, {
    limit: 'tokenizer.ggml.model',
  });
}
