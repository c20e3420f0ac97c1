/**
 * com.microsoft quantized-weight converters: MatMulNBits → `matmul_nbits`, GatherBlockQuantized →
 * `gather_block_quantized` (ir/ops/blockq.ts). The packed data, scales and zero points stay the op's inputs as they
 * are stored (the block-quantized representation the quantization passes produce too); `accuracy_level` only allows
 * a lower-precision activation path, and kiln computes in f32 at every level.
 */
import { onnxOp } from '../convert.js';

const MS = 'com.microsoft';

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
    return [
      ctx.emit('matmul_nbits', [ctx.req(0), ctx.req(1), ctx.req(2), ctx.input(3), gIdx, ctx.input(5)], {
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
  (ctx) => [
    ctx.emit('gather_block_quantized', [ctx.req(0), ctx.req(1), ctx.req(2), ctx.input(3)], {
      gather_axis: ctx.int('gather_axis', 0),
      quantize_axis: ctx.int('quantize_axis', 1),
      block_size: ctx.int('block_size', 128),
      bits: ctx.int('bits', 4),
    }),
  ],
  1,
  MS,
);
