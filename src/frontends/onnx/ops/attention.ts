/** ONNX Attention (opset 23/24) and RotaryEmbedding (opset 23) → kiln `attention` / `rotary_embedding`. */
import type { Attrs } from '../../../../ir/registry.js';
import { onnxOp, type ConvertContext } from '../convert.js';

/** Emit `op` with as many outputs as the node names (trailing absent outputs dropped). */
function emitOutputs(ctx: ConvertContext, op: string, inputs: number, attrs: Attrs, maxOutputs: number) {
  const names = ctx.node.outputs.slice(0, maxOutputs);
  let n = names.length;
  while (n > 1 && names[n - 1] === '') n--;
  const ins = Array.from({ length: Math.min(ctx.numInputs, inputs) }, (_, i) => ctx.input(i));
  return ctx.emitN(op, ins, attrs, Math.max(n, 1));
}

onnxOp(
  'Attention',
  (ctx) => {
    if (ctx.opset < 24 && ctx.input(6)) ctx.fail('nonpad_kv_seqlen is an Attention-24 input');
    const attrs: Record<string, number | boolean | string> = {
      is_causal: ctx.int('is_causal', 0) !== 0,
      softcap: ctx.float('softcap', 0),
      qk_matmul_output_mode: ctx.int('qk_matmul_output_mode', 0),
    };
    if (ctx.hasAttr('scale')) attrs['scale'] = ctx.float('scale');
    if (ctx.hasAttr('q_num_heads')) attrs['q_num_heads'] = ctx.int('q_num_heads');
    if (ctx.hasAttr('kv_num_heads')) attrs['kv_num_heads'] = ctx.int('kv_num_heads');
    if (ctx.hasAttr('softmax_precision')) {
      attrs['softmax_precision'] = ctx.dtype(ctx.int('softmax_precision'), 'Attention.softmax_precision');
    }
    return emitOutputs(ctx, 'attention', 7, attrs, 4);
  },
  23,
);

onnxOp(
  'RotaryEmbedding',
  (ctx) =>
    emitOutputs(
      ctx,
      'rotary_embedding',
      4,
      {
        interleaved: ctx.int('interleaved', 0) !== 0,
        rotary_embedding_dim: ctx.int('rotary_embedding_dim', 0),
        num_heads: ctx.int('num_heads', 0),
      },
      1,
    ),
  23,
);
