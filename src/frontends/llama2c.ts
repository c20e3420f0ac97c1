/**
 * llama2.c checkpoints (Karpathy's `run.c` format) → a LlamaConfig and canonical weights.
 *
 * Legacy (version 0) layout: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size — negative when
 * the classifier is stored separately —, seq_len), then f32: token embedding [vocab, dim], rms_att [L, dim],
 * wq [L, dim, dim], wk [L, kv, dim], wv [L, kv, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim],
 * w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim], RoPE tables [seq, hd/2] ×2 (skipped), wcls [vocab, dim].
 * Linear weights are stored [out, in] and Q/K rows use interleaved RoPE pairs: both are converted (weight-layout.ts).
 *
 * Version 1 (`export.py --version 1`, magic "ak42"): a 256-byte header (magic, version, the 7 params, a
 * shared-classifier byte), then f32 norms first and matrices grouped by kind. Version 2 (Q8_0) is not supported.
 *
 * Tensors that need no layout change (embedding, norms) are views of `bytes` when it is 4-aligned.
 */
import { ParseError, UnsupportedError } from '../../ir/errors.js';
import type { Tensor } from '../../ir/tensor.js';
import { weightMap, type LlamaConfig, type WeightSource } from '../models/config.js';
import { ByteReader, f32Values } from './bytes.js';
import { floatTensor, linearInOut } from './weight-layout.js';

export interface Llama2cModel {
  readonly config: LlamaConfig;
  readonly weights: WeightSource;
  /** Checkpoint format version (0 = legacy header). */
  readonly version: number;
}

const MAGIC = 0x616b3432; // "ak42" read as a little-endian u32
const FORMAT = 'llama2.c checkpoint';

interface Header {
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  seq: number;
  shared: boolean;
}

function checkHeader(h: Header): void {
  const bad = (msg: string, limit?: string): never => {
    throw new ParseError(`${FORMAT}: ${msg}`, limit ? { limit } : {});
  };
  for (const [k, v] of Object.entries(h)) {
    if (typeof v === 'number' && !(v > 0 && v <= 2 ** 24)) bad(`header ${k} = ${v} is out of range (1 … 2^24)`, k);
  }
  if (h.heads % h.kvHeads !== 0) bad(`n_heads ${h.heads} is not a multiple of n_kv_heads ${h.kvHeads}`);
  if (h.dim % h.heads !== 0) bad(`dim ${h.dim} is not a multiple of n_heads ${h.heads}`);
  if ((h.dim / h.heads) % 2 !== 0) bad(`head size ${h.dim / h.heads} is odd (RoPE needs pairs)`);
}

/**
 * Parses a llama2.c checkpoint: the legacy (version 0) layout or a versioned one (magic "ak42", version 1).
 *
 * @throws ParseError for a truncated or malformed file (header values out of range, a head size that is odd or does
 * not divide dim, a weight section whose size the header contradicts).
 * @throws UnsupportedError for a version-2 (int8 quantized) checkpoint.
 */
export function loadLlama2c(bytes: Uint8Array): Llama2cModel {
  const r = new ByteReader(bytes, FORMAT);
  if (bytes.length >= 4 && r.view.getUint32(0, true) === MAGIC) return loadVersioned(r);
  const h: Header = {
    dim: r.i32('dim'),
    hidden: r.i32('hidden_dim'),
    layers: r.i32('n_layers'),
    heads: r.i32('n_heads'),
    kvHeads: r.i32('n_kv_heads'),
    vocab: r.i32('vocab_size'),
    seq: r.i32('seq_len'),
    shared: true,
  };
  // A negative vocab size is llama2.c's flag for an unshared classifier.
  if (h.vocab < 0) {
    h.vocab = -h.vocab;
    h.shared = false;
  }
  checkHeader(h);
  const hd = h.dim / h.heads;
  const kv = hd * h.kvHeads;
  const { dim, hidden, layers: L, vocab, seq } = h;
  const floats =
    vocab * dim +
    L * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * hidden * dim) +
    dim +
    seq * hd +
    (h.shared ? 0 : vocab * dim);
  if (floats * 4 !== r.remaining) {
    throw new ParseError(
      `${FORMAT}: the header implies ${floats * 4} bytes of weights, the file has ${r.remaining} after the header`,
      { limit: 'file size' },
    );
  }
  let pos = r.pos;
  const next = (n: number): Float32Array => {
    const v = f32Values(bytes, pos, n);
    pos += n * 4;
    return v;
  };
  const raw = {
    emb: next(vocab * dim),
    rmsAtt: next(L * dim),
    wq: next(L * dim * dim),
    wk: next(L * kv * dim),
    wv: next(L * kv * dim),
    wo: next(L * dim * dim),
    rmsFfn: next(L * dim),
    w1: next(L * hidden * dim),
    w2: next(L * dim * hidden),
    w3: next(L * hidden * dim),
    rmsFinal: next(dim),
    rope: next(seq * hd), // freq_cis_real and freq_cis_imag: kiln computes its own tables
    wcls: h.shared ? undefined : next(vocab * dim),
  };
  return { version: 0, ...assemble(h, raw) };
}

interface Raw {
  emb: Float32Array;
  rmsAtt: Float32Array;
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  rmsFfn: Float32Array;
  w1: Float32Array;
  w2: Float32Array;
  w3: Float32Array;
  rmsFinal: Float32Array;
  wcls: Float32Array | undefined;
}

/** Canonical weights from the per-kind arrays (each holding all layers back to back). */
function assemble(h: Header, raw: Raw): { config: LlamaConfig; weights: WeightSource } {
  const { dim, hidden, layers: L, vocab } = h;
  const kv = (dim / h.heads) * h.kvHeads;
  const m = new Map<string, Tensor>();
  const slice = (a: Float32Array, i: number, n: number) => a.subarray(i * n, (i + 1) * n);
  m.set('tok_embeddings', floatTensor('f32', [vocab, dim], raw.emb, 'tok_embeddings'));
  for (let i = 0; i < L; i++) {
    const p = `layers.${i}.`;
    m.set(p + 'attention_norm', floatTensor('f32', [dim], slice(raw.rmsAtt, i, dim), p + 'attention_norm'));
    m.set(p + 'wq', linearInOut(slice(raw.wq, i, dim * dim), 'f32', dim, dim, p + 'wq', h.heads));
    m.set(p + 'wk', linearInOut(slice(raw.wk, i, kv * dim), 'f32', kv, dim, p + 'wk', h.kvHeads));
    m.set(p + 'wv', linearInOut(slice(raw.wv, i, kv * dim), 'f32', kv, dim, p + 'wv'));
    m.set(p + 'wo', linearInOut(slice(raw.wo, i, dim * dim), 'f32', dim, dim, p + 'wo'));
    m.set(p + 'ffn_norm', floatTensor('f32', [dim], slice(raw.rmsFfn, i, dim), p + 'ffn_norm'));
    m.set(p + 'w1', linearInOut(slice(raw.w1, i, hidden * dim), 'f32', hidden, dim, p + 'w1'));
    m.set(p + 'w2', linearInOut(slice(raw.w2, i, dim * hidden), 'f32', dim, hidden, p + 'w2'));
    m.set(p + 'w3', linearInOut(slice(raw.w3, i, hidden * dim), 'f32', hidden, dim, p + 'w3'));
  }
  m.set('norm', floatTensor('f32', [dim], raw.rmsFinal, 'norm'));
  if (raw.wcls) m.set('output', linearInOut(raw.wcls, 'f32', vocab, dim, 'output'));
  const config: LlamaConfig = {
    arch: 'llama',
    dim,
    hiddenDim: hidden,
    layers: L,
    heads: h.heads,
    kvHeads: h.kvHeads,
    vocab,
    maxSeq: h.seq,
    normEps: 1e-5,
    ropeTheta: 10000,
    tiedHead: h.shared,
  };
  return { config, weights: weightMap(m, 'llama2.c checkpoint') };
}

/** Version 1 (fp32, grouped by kind) of `export.py`; version 2 (Q8_0) is a typed error. */
function loadVersioned(r: ByteReader): Llama2cModel {
  r.u32('magic');
  const version = r.i32('version');
  if (version === 2) {
    throw new UnsupportedError(`${FORMAT}: version 2 (Q8_0 quantized) checkpoints are not supported; export fp32`, {
      limit: 'version',
    });
  }
  if (version !== 1) throw new ParseError(`${FORMAT}: unknown version ${version}`, { limit: 'version' });
  const h: Header = {
    dim: r.i32('dim'),
    hidden: r.i32('hidden_dim'),
    layers: r.i32('n_layers'),
    heads: r.i32('n_heads'),
    kvHeads: r.i32('n_kv_heads'),
    vocab: r.i32('vocab_size'),
    seq: r.i32('max_seq_len'),
    shared: r.u8('shared_classifier') !== 0,
  };
  checkHeader(h);
  const HEADER = 256;
  if (r.bytes.length < HEADER) throw new ParseError(`${FORMAT}: version 1 header is 256 bytes`, { limit: 'header' });
  const bytes = r.bytes;
  const { dim, hidden, layers: L, vocab } = h;
  const kv = (dim / h.heads) * h.kvHeads;
  const floats = L * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * hidden * dim) + dim + vocab * dim;
  const total = floats + (h.shared ? 0 : vocab * dim);
  if (total * 4 !== bytes.length - HEADER) {
    throw new ParseError(
      `${FORMAT}: the header implies ${total * 4} bytes of weights, the file has ${bytes.length - HEADER}`,
      { limit: 'file size' },
    );
  }
  let pos = HEADER;
  const next = (n: number): Float32Array => {
    const v = f32Values(bytes, pos, n);
    pos += n * 4;
    return v;
  };
  const rmsAtt = next(L * dim);
  const rmsFfn = next(L * dim);
  const rmsFinal = next(dim);
  const emb = next(vocab * dim);
  const raw: Raw = {
    emb,
    rmsAtt,
    rmsFfn,
    rmsFinal,
    wq: next(L * dim * dim),
    wk: next(L * kv * dim),
    wv: next(L * kv * dim),
    wo: next(L * dim * dim),
    w1: next(L * hidden * dim),
    w2: next(L * dim * hidden),
    w3: next(L * hidden * dim),
    wcls: h.shared ? undefined : next(vocab * dim),
  };
  return { version: 1, ...assemble(h, raw) };
}
