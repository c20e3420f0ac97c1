/**
 * Layout changes the loaders share: a linear weight stored [out, in] (PyTorch `nn.Linear`, llama2.c, GGUF) becomes
 * kiln's canonical [in, out], and Q/K weights stored with interleaved RoPE pairs (2i, 2i+1) are moved to the
 * rotate-halves convention (i, i + hd/2) of the canonical names (see `src/models/config.ts`).
 */
import type { DType } from '../../ir/dtype.js';
import { KilnError, ParseError } from '../../ir/errors.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';

/**
 * Row `r` of an interleaved-RoPE projection (per head: dims 2i, 2i+1 form pair i) is canonical column
 * `h·hd + j·hd/2 + i` where r = h·hd + 2i + j — the inverse of the permutation Hugging Face → Meta / llama.cpp.
 */
export function interleavedToHalves(r: number, headDim: number): number {
  const h = Math.floor(r / headDim);
  const k = r - h * headDim;
  const i = k >> 1;
  const j = k & 1;
  return h * headDim + j * (headDim / 2) + i;
}

/**
 * A [out, in] row-major weight → a float tensor [in, out]. With `ropeHeads`, output rows are also moved from
 * interleaved RoPE pairs to rotate-halves (Q/K of llama2.c and GGUF checkpoints). f16 / bf16 values are exact in f32,
 * so they keep their dtype without rounding.
 */
export function linearInOut(
  src: ArrayLike<number>,
  dtype: DType,
  out: number,
  inn: number,
  name: string,
  ropeHeads?: number,
): Tensor {
  if (src.length !== out * inn) {
    throw new ParseError(`weight has ${src.length} values, expected [${out}, ${inn}]`, { tensor: name });
  }
  let headDim = 0;
  if (ropeHeads !== undefined) {
    headDim = out / ropeHeads;
    if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
      throw new ParseError(`${out} rows do not split into ${ropeHeads} heads of an even size`, { tensor: name });
    }
  }
  if (out * inn > 2 ** 27) {
    throw new KilnError('limit', `weight [${out}, ${inn}] exceeds 2^27 elements`, {
      tensor: name,
      limit: 'MAX_REFERENCE_ELEMENTS',
    });
  }
  const dst = dtype === 'f64' ? new Float64Array(out * inn) : new Float32Array(out * inn);
  for (let r = 0; r < out; r++) {
    const c = ropeHeads === undefined ? r : interleavedToHalves(r, headDim);
    const base = r * inn;
    for (let k = 0; k < inn; k++) dst[k * out + c] = src[base + k]!;
  }
  return floatTensor(dtype, [inn, out], dst, name);
}

/**
 * A float tensor over values already exact in `dtype` (f32 views are taken without a copy; f16 / bf16 values came
 * from their bit patterns, so they are stored as they are rather than re-rounded element by element).
 */
export function floatTensor(
  dtype: DType,
  shape: readonly number[],
  data: Float32Array | Float64Array,
  name: string,
): Tensor {
  if (dtype === 'f16' || dtype === 'bf16') {
    const t = makeTensor('f32', shape, data as Float32Array, { tensor: name }); // validates shape and length
    return { dtype, shape: t.shape, data: t.data };
  }
  return makeTensor(dtype, shape, data, { tensor: name });
}

/** The values of a [out, in] float tensor laid out [in, out] (see {@link linearInOut}). */
export function transposeLinear(t: Tensor, name: string, ropeHeads?: number): Tensor {
  if (t.shape.length !== 2) {
    throw new ParseError(`a linear weight must be 2-D, got shape [${t.shape}]`, { tensor: name });
  }
  return linearInOut(t.data, t.dtype, t.shape[0]!, t.shape[1]!, name, ropeHeads);
}
