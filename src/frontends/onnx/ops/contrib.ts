/**
 * ONNX Runtime contrib ops (`com.microsoft`) that are compositions of kiln ops: the GELU family (Gelu, FastGelu,
 * BiasGelu, QuickGelu, BiasSplitGelu), BiasAdd, the skip / simplified layer norms, and RotaryEmbedding. Every
 * converter emits existing kiln ops only, so each op's meaning is the kiln ops' float64 references.
 */
import type { DType } from '../../../../ir/dtype.js';
import type { Value } from '../../../../ir/graph.js';
import type { Dim } from '../../../../ir/shape.js';
import { onnxOp, type ConvertContext } from '../convert.js';

export const MS = 'com.microsoft';

/** Scalar constant of `dtype` (shape []). */
export function scalar(ctx: ConvertContext, dtype: DType, v: number): Value {
  return ctx.constant(dtype, [v], []);
}

/** [0, 1, ..., n-1] as i64 for dim `axis` of `x`: a constant when static, else `range` over the run-time size. */
export function arange(ctx: ConvertContext, x: Value, axis: number): Value {
  const d: Dim = x.type.shape[axis]!;
  if (typeof d === 'number') {
    return ctx.constant(
      'i64',
      Array.from({ length: d }, (_, i) => i),
      [d],
    );
  }
  const n = ctx.emit('reshape', [ctx.emit('shape', [x], { start: axis, end: axis + 1 }), ctx.constant('i64', [], [0])]);
  return ctx.emit('range', [scalar(ctx, 'i64', 0), n, scalar(ctx, 'i64', 1)]);
}

/** The node's input `i`, which must be a float tensor of rank in `ranks` (a located error otherwise). */
export function floatInput(ctx: ConvertContext, i: number, what: string, ranks?: readonly number[]): Value {
  const v = ctx.req(i);
  if (!['f64', 'f32', 'f16', 'bf16'].includes(v.type.dtype)) {
    ctx.fail(`${what} (input ${i}) must be a float tensor, got ${v.type.dtype}`);
  }
  if (ranks && !ranks.includes(v.type.shape.length)) {
    ctx.fail(`${what} (input ${i}) must have rank ${ranks.join(' or ')}, got [${v.type.shape.join(',')}]`);
  }
  return v;
}

/** A 1-D [n] parameter (gamma / beta / bias) of the same dtype as `like`, n = like's last dim when static. */
function vectorInput(ctx: ConvertContext, i: number, what: string, like: Value): Value | null {
  const v = ctx.input(i);
  if (!v) return null;
  if (v.type.dtype !== like.type.dtype)
    ctx.fail(`${what} (input ${i}) has dtype ${v.type.dtype}, expected ${like.type.dtype}`);
  const n = like.type.shape.at(-1);
  const s = v.type.shape;
  if (s.length !== 1 || (typeof n === 'number' && typeof s[0] === 'number' && s[0] !== n)) {
    ctx.fail(`${what} (input ${i}) must be 1-D [${n}], got [${s.join(',')}]`);
  }
  return v;
}

/** How many outputs the node names (trailing absent ones dropped; at least 1). */
function namedOutputs(ctx: ConvertContext): number {
  let n = ctx.node.outputs.length;
  while (n > 1 && ctx.node.outputs[n - 1] === '') n--;
  return Math.max(n, 1);
}

const wants = (ctx: ConvertContext, i: number): boolean => (ctx.node.outputs[i] ?? '') !== '';

// ---- GELU family ----

onnxOp('Gelu', (ctx) => [ctx.emit('gelu', [floatInput(ctx, 0, 'X')], { approximate: 'none' })], 1, MS);

onnxOp(
  'FastGelu',
  (ctx) => {
    const x = floatInput(ctx, 0, 'X');
    const bias = vectorInput(ctx, 1, 'bias', x);
    return [ctx.emit('gelu', [bias ? ctx.emit('add', [x, bias]) : x], { approximate: 'tanh' })];
  },
  1,
  MS,
);

onnxOp(
  'BiasGelu',
  (ctx) => {
    const x = floatInput(ctx, 0, 'A');
    const bias = vectorInput(ctx, 1, 'B', x) ?? ctx.fail('input 1 (B) is required');
    return [ctx.emit('gelu', [ctx.emit('add', [x, bias])], { approximate: 'none' })];
  },
  1,
  MS,
);

onnxOp(
  'QuickGelu',
  (ctx) => {
    const x = floatInput(ctx, 0, 'X');
    const alpha = ctx.float('alpha', 1.702);
    const ax = alpha === 1 ? x : ctx.emit('mul', [x, scalar(ctx, x.type.dtype, alpha)]);
    return [ctx.emit('mul', [x, ctx.emit('sigmoid', [ax])])];
  },
  1,
  MS,
);

onnxOp(
  'BiasAdd',
  (ctx) => {
    const x = floatInput(ctx, 0, 'X', [3]);
    const bias = vectorInput(ctx, 1, 'bias', x) ?? ctx.fail('input 1 (bias) is required');
    const skip = floatInput(ctx, 2, 'skip', [3]);
    if (skip.type.dtype !== x.type.dtype) ctx.fail(`skip has dtype ${skip.type.dtype}, X has ${x.type.dtype}`);
    return [ctx.emit('add', [ctx.emit('add', [x, bias]), skip])];
  },
  1,
  MS,
);

onnxOp(
  'BiasSplitGelu',
  (ctx: ConvertContext) => {
    const x = floatInput(ctx, 0, 'X', [3]);
    const bias = vectorInput(ctx, 1, 'bias', x) ?? ctx.fail('input 1 (bias) is required');
    const d = x.type.shape[2]!;
    if (typeof d !== 'number') ctx.unsupported('BiasSplitGelu needs a static last dim');
    if (d % 2 !== 0) ctx.fail(`the last dim of X (${d}) must be even`);
    const [left, right] = ctx.emitN('split', [ctx.emit('add', [x, bias])], { axis: -1, split: [d / 2, d / 2] }, 2);
    return [ctx.emit('mul', [left!, ctx.emit('gelu', [right!], { approximate: 'none' })])];
  },
  1,
  MS,
);

// ---- normalizations ----

/** 1 / sqrt(mean(x^2 over axes axis..) + eps) in f32 (the stash type), keeping the reduced dims as 1. */
function rmsInvStd(ctx: ConvertContext, x: Value, axis: number, eps: number, stash: DType): Value {
  const r = x.type.shape.length;
  const a = axis < 0 ? axis + r : axis;
  const xs = x.type.dtype === stash ? x : ctx.emit('cast', [x], { to: stash });
  const axes = Array.from({ length: r - a }, (_, i) => a + i);
  const ms = ctx.emit('reduce_mean', [ctx.emit('mul', [xs, xs])], { axes, keepdims: true });
  return ctx.emit('reciprocal', [ctx.emit('sqrt', [ctx.emit('add', [ms, scalar(ctx, stash, eps)])])]);
}

/**
 * SkipLayerNormalization / SkipSimplifiedLayerNormalization: s = input + skip (+ bias), then layer norm (gamma, beta)
 * or RMS norm (gamma) over the last axis. Outputs: output, mean, inv_std_var ([B, S, 1], f32),
 * input_skip_bias_sum (s).
 */
function skipNorm(ctx: ConvertContext, simplified: boolean): (Value | null)[] {
  const x = floatInput(ctx, 0, 'input', [2, 3]);
  const skip = floatInput(ctx, 1, 'skip', [1, 2, 3]);
  if (skip.type.dtype !== x.type.dtype) ctx.fail(`skip has dtype ${skip.type.dtype}, input has ${x.type.dtype}`);
  const xs = x.type.shape;
  const ss = skip.type.shape;
  const tail = xs.slice(xs.length - ss.length);
  if (
    ss.some(
      (d, i) =>
        d !== tail[i] && !(i < ss.length - 1 && d === 1) && typeof d === 'number' && typeof tail[i] === 'number',
    )
  ) {
    ctx.fail(`skip [${ss.join(',')}] does not broadcast to input [${xs.join(',')}]`);
  }
  const gamma = vectorInput(ctx, 2, 'gamma', x) ?? ctx.fail('input 2 (gamma) is required');
  const beta = simplified ? null : vectorInput(ctx, 3, 'beta', x);
  const bias = vectorInput(ctx, simplified ? 3 : 4, 'bias', x);
  const eps = ctx.float('epsilon', 1e-12);
  let s = ctx.emit('add', [x, skip]);
  if (bias) s = ctx.emit('add', [s, bias]);
  const outs: (Value | null)[] = [null, null, null, wants(ctx, 3) ? s : null];
  if (simplified) {
    if (wants(ctx, 1)) ctx.unsupported('SkipSimplifiedLayerNormalization has no mean output');
    outs[0] = ctx.emit('rms_norm', [s, gamma], { axis: -1, epsilon: eps });
    if (wants(ctx, 2)) outs[2] = rmsInvStd(ctx, s, -1, eps, 'f32');
  } else {
    const n = wants(ctx, 1) || wants(ctx, 2) ? 3 : 1;
    const ln = ctx.emitN('layer_norm', [s, gamma, beta], { axis: -1, epsilon: eps, stash_type: 'f32' }, n);
    outs[0] = ln[0]!;
    if (wants(ctx, 1)) outs[1] = ln[1]!;
    if (wants(ctx, 2)) outs[2] = ln[2]!;
  }
  return outs.slice(0, namedOutputs(ctx));
}

onnxOp('SkipLayerNormalization', (ctx) => skipNorm(ctx, false), 1, MS);
onnxOp('SkipSimplifiedLayerNormalization', (ctx) => skipNorm(ctx, true), 1, MS);

/**
 * SimplifiedLayerNormalization (RMS norm over axis..rank-1 with scale; ONNX Runtime registers it in the default
 * domain, exporters sometimes in com.microsoft): Y and the optional inv_std_var (stash_type, reduced dims kept as 1).
 */
function simplifiedLayerNorm(ctx: ConvertContext): (Value | null)[] {
  const x = floatInput(ctx, 0, 'X');
  const scale = ctx.req(1);
  if (scale.type.dtype !== x.type.dtype) ctx.fail(`scale has dtype ${scale.type.dtype}, X has ${x.type.dtype}`);
  const axis = ctx.int('axis', -1);
  const r = x.type.shape.length;
  if (axis < -r || axis >= r) ctx.fail(`axis ${axis} out of range for rank ${r}`);
  const eps = ctx.float('epsilon', 1e-5);
  const stash = ctx.dtype(ctx.int('stash_type', 1), 'SimplifiedLayerNormalization stash_type');
  const y = ctx.emit('rms_norm', [x, scale], { axis, epsilon: eps });
  return wants(ctx, 1) ? [y, rmsInvStd(ctx, x, axis, eps, stash)] : [y];
}

onnxOp('SimplifiedLayerNormalization', simplifiedLayerNorm, 1, MS);
onnxOp('SimplifiedLayerNormalization', simplifiedLayerNorm, 1);

// ---- rotary ----

/**
 * RotaryEmbedding (com.microsoft): inputs (input, position_ids, cos_cache, sin_cache), caches [max_pos, rotary/2],
 * position_ids [B, S] or a scalar start (positions start + s). 3-D input without num_heads: the head size is twice
 * the cache's last dim. → kiln `rotary_embedding` (input 3-D with num_heads, or 4-D [B, N, S, H]).
 */
onnxOp(
  'RotaryEmbedding',
  (ctx: ConvertContext) => {
    const x = floatInput(ctx, 0, 'input', [3, 4]);
    const pos = ctx.req(1);
    const cos = floatInput(ctx, 2, 'cos_cache', [2]);
    const sin = floatInput(ctx, 3, 'sin_cache', [2]);
    if (ctx.int('is_packed_batching', 0) !== 0) ctx.unsupported('RotaryEmbedding is_packed_batching is not supported');
    if (!['i64', 'i32'].includes(pos.type.dtype)) ctx.fail(`position_ids must be int64, got ${pos.type.dtype}`);
    let numHeads = ctx.int('num_heads', 0);
    const rotDim = ctx.int('rotary_embedding_dim', 0);
    if (numHeads < 0 || rotDim < 0) ctx.fail('num_heads and rotary_embedding_dim must be >= 0');
    if (rotDim > 0 && numHeads === 0) ctx.fail('rotary_embedding_dim needs the num_heads attribute');
    const half = cos.type.shape[1]!;
    if (x.type.shape.length === 3 && numHeads === 0) {
      const hidden = x.type.shape[2]!;
      if (typeof hidden !== 'number' || typeof half !== 'number') {
        ctx.unsupported('RotaryEmbedding without num_heads needs a static hidden size and cache');
      }
      if (half === 0 || hidden % (2 * half) !== 0) {
        ctx.fail(`hidden size ${hidden} is not a multiple of the head size 2 * ${half} the caches imply`);
      }
      numHeads = hidden / (2 * half);
    }
    let positions: Value;
    const ps = pos.type.shape;
    const p64 = pos.type.dtype === 'i64' ? pos : ctx.emit('cast', [pos], { to: 'i64' });
    if (ps.length === 2) positions = p64;
    else if (ps.every((d) => d === 1)) {
      // a start offset: positions start + [0, S)
      const seq = arange(ctx, x, x.type.shape.length === 4 ? 2 : 1);
      const start = ctx.emit('reshape', [p64, ctx.constant('i64', [], [0])]);
      positions = ctx.emit('unsqueeze', [ctx.emit('add', [seq, start])], { axes: [0] });
    } else return ctx.fail(`position_ids must be a scalar or 2-D [batch, seq], got [${ps.join(',')}]`);
    return [
      ctx.emit('rotary_embedding', [x, cos, sin, positions], {
        interleaved: ctx.int('interleaved', 0) !== 0,
        rotary_embedding_dim: rotDim,
        num_heads: numHeads,
      }),
    ];
  },
  1,
  MS,
);
