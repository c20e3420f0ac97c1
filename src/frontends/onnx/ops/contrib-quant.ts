/**
 * com.microsoft quantized-weight converters: MatMulNBits → `matmul_nbits`, GatherBlockQuantized →
 * `gather_block_quantized` (ir/ops/blockq.ts). The packed data, scales and zero points stay the op's inputs as they
 * are stored, constant packed data typed with the blockq layout (the representation the quantization passes produce
 * too); `accuracy_level` only allows a lower-precision activation path, and kiln computes in f32 at every level.
 */
import type { DType } from '../../../../ir/dtype.js';
import type { Value } from '../../../../ir/graph.js';
import { blockqLayout } from '../../../../ir/ops/blockq.js';
import { tensorType } from '../../../../ir/types.js';
import { onnxOp } from '../convert.js';

const MS = 'com.microsoft';

/**
 * A constant packed-data initializer becomes a tensor of the blockq layout type (the weight it is), as the
 * quantization passes make theirs; a run-time input stays dense (its layout is the node's to interpret).
 */
function typeAsBlockq(v: Value, bits: number, group: number, axis: number, scale: DType, zp: boolean): void {
  if (!v.isConst || v.type.layout.kind !== 'dense') return;
  v.type = tensorType(v.type.dtype, v.type.shape, blockqLayout(bits, group, axis, scale, zp));
}

onnxOp(
  'MatMulNBits',
  (ctx) => {
    const K = ctx.int('K');
    const N = ctx.int('N');
    const bits = ctx.int('bits', 4);
    const block = ctx.int('block_size');
    if (bits !== 4 && bits !== 8) ctx.unsupported(`MatMulNBits with bits = ${bits} (kiln supports 4 and 8)`);
    // a g_idx that names the block every k is in anyway (k / block_size) is dropped: the plain layout is faster
    let gIdx = ctx.input(4);
    const g = ctx.constInput(4);
    if (g && g.data.length === K && Array.from(g.data, Number).every((j, k) => j === Math.floor(k / block))) {
      gIdx = null;
    }
    const scales = ctx.req(2);
    const zp = ctx.input(3);
    typeAsBlockq(ctx.req(1), bits, block, 1, scales.type.dtype, !!zp);
    return [
      ctx.emit('matmul_nbits', [ctx.req(0), ctx.req(1), scales, zp, gIdx, ctx.input(5)], {
        K,
        N,
        bits,
        block_size: block,
      }),
    ];
  },
  1,
  MS,
);

onnxOp(
  'GatherBlockQuantized',
  (ctx) => {
    const data = ctx.req(0);
    const attrs = {
      gather_axis: ctx.int('gather_axis', 0),
      quantize_axis: ctx.int('quantize_axis', 1),
      block_size: ctx.int('block_size', 128),
      bits: ctx.int('bits', 4),
    };
    const rank = data.type.shape.length;
    const qa = attrs.quantize_axis < 0 ? attrs.quantize_axis + rank : attrs.quantize_axis;
    if (qa >= 0 && qa < rank) {
      typeAsBlockq(data, attrs.bits, attrs.block_size, qa, ctx.req(2).type.dtype, !!ctx.input(3));
    }
    return [ctx.emit('gather_block_quantized', [data, ctx.req(1), ctx.req(2), ctx.input(3)], attrs)];
  },
  1,
  MS,
);
