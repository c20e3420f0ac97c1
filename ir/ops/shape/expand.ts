/** Broadcasting copies: expand and tile. */
import { dimMul } from '../../dim-expr.js';
import { broadcastShapes, dimProduct, numel, stridesOf, type Dim } from '../../shape.js';
import { expandLayout } from '../../layout.js';
import { registerOp } from '../../registry.js';
import { scratchTensor } from '../../tensor.js';
import { tensorType } from '../../types.js';
import { broadcastMap, odometerStep, req } from '../util.js';
import { symDim, checkIndexInput, shapeValueOf } from './common.js';

// ---- expand / tile -------------------------------------------------------------------------------------------

registerOp({
  name: 'expand',
  doc: 'broadcast x against `shape` (bidirectionally: a 1 in `shape` keeps the input dim)',
  inputs: [{ name: 'x' }, { name: 'shape' }],
  outputs: [{ name: 'y' }],
  attrs: {},
  fusion: 'broadcast',
  infer(ctx) {
    const x = req(ctx, 0);
    const s = checkIndexInput(ctx, 1, 'shape')!;
    const target = shapeValueOf(ctx, 1, 'shape');
    if (target) {
      if (target.some((v) => typeof v === 'number' && v < 0)) {
        ctx.fail(`expand shape [${target.join(', ')}] has a negative dim`);
      }
      try {
        return [tensorType(x.dtype, broadcastShapes([x.shape, target]))];
      } catch (e) {
        return ctx.fail((e as Error).message);
      }
    }
    const len = s.shape[0]!;
    if (typeof len !== 'number') return ctx.fail('expand needs a shape input of static length');
    const rank = Math.max(len, x.shape.length);
    // Where x's dim is not 1 the target must be 1 or equal to it, so the output dim is x's.
    const out = Array.from({ length: rank }, (_, k): Dim => {
      const d = x.shape[k - (rank - x.shape.length)];
      return d === undefined || d === 1 ? symDim(ctx, k) : d;
    });
    return [tensorType(x.dtype, out)];
  },
  symbolic(ctx, [t]) {
    // A scalar dim broadcast to a vector (Expand(Unsqueeze(seq), [n])).
    const v = ctx.symbolicValue(0);
    return v?.length === 1 ? [new Array<Dim>(numel(t!.shape as number[])).fill(v[0]!)] : undefined;
  },
  layout(x, { outShapes }) {
    return [expandLayout(x, outShapes[0]!)];
  },
  reference([x, s], _a, ctx) {
    let outShape: number[];
    try {
      outShape = broadcastShapes([x!.shape, Array.from(s!.data)]) as number[];
    } catch (e) {
      return ctx.fail((e as Error).message);
    }
    return [broadcastMap(x!.dtype, [x!], (v) => v, outShape)];
  },
});

registerOp({
  name: 'tile',
  doc: 'repeat x `repeats[i]` times along each axis i',
  inputs: [{ name: 'x' }, { name: 'repeats' }],
  outputs: [{ name: 'y' }],
  attrs: {},
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    const r = checkIndexInput(ctx, 1, 'repeats')!;
    const reps = shapeValueOf(ctx, 1, 'repeats');
    if (r.shape[0] !== x.shape.length) ctx.fail(`repeats has length ${r.shape[0]}, input has rank ${x.shape.length}`);
    if (!reps)
      return [
        tensorType(
          x.dtype,
          x.shape.map((_, k) => symDim(ctx, k)),
        ),
      ];
    if (reps.some((v) => typeof v === 'number' && v < 0)) ctx.fail(`repeats [${reps.join(', ')}] has a negative entry`);
    return [
      tensorType(
        x.dtype,
        x.shape.map((d, k) => {
          const r = reps[k]!;
          // numbers keep the existing spelling (`3*seq`); a symbolic repeat multiplies normalized
          return typeof r === 'number' ? dimProduct([d, r]) : (dimMul(d, r) ?? symDim(ctx, k));
        }),
      ),
    ];
  },
  reference([x, r], _a, ctx) {
    const t = x!;
    const reps = Array.from(r!.data);
    if (reps.length !== t.shape.length) ctx.fail(`repeats has length ${reps.length}, input has rank ${t.shape.length}`);
    const outShape = t.shape.map((d, k) => d * reps[k]!);
    const out = scratchTensor(t.dtype, outShape);
    const st = stridesOf(t.shape);
    const idx = new Array<number>(outShape.length).fill(0);
    for (let k = 0; k < out.data.length; k++) {
      let off = 0;
      for (let i = 0; i < idx.length; i++) off += (idx[i]! % t.shape[i]!) * st[i]!;
      out.data[k] = t.data[off]!;
      odometerStep(idx, [], [], outShape, 0, idx.length);
    }
    return [out];
  },
});
