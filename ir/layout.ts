/**
 * Strided layouts: where the elements of a tensor lie in a buffer (element offset plus one stride per dim). Movement
 * ops (transpose, slice, split, a gather of one index, reshape, expand) only change the layout of their input, so a
 * backend can hand their consumers a layout over the producer's buffer instead of copying (`OpDef.layout`).
 */
import { stridesOf } from './shape.js';

export interface StridedLayout {
  /** Element offset of element 0. */
  readonly offset: number;
  readonly shape: readonly number[];
  /** Element strides, per dim (0 for a broadcast dim, negative for a reversed slice). */
  readonly strides: readonly number[];
}

/** The row-major layout of `shape` at `offset`. */
export function contiguousLayout(shape: readonly number[], offset = 0): StridedLayout {
  return { offset, shape: [...shape], strides: stridesOf(shape) };
}

/** Row-major (size-1 dims aside): element i lies at offset + i. */
export function isContiguous(l: StridedLayout): boolean {
  let expect = 1;
  for (let d = l.shape.length - 1; d >= 0; d--) {
    if (l.shape[d] === 1) continue;
    if (l.strides[d] !== expect) return false;
    expect *= l.shape[d]!;
  }
  return true;
}

/** Output dim i is input dim perm[i]. */
export function permuteLayout(l: StridedLayout, perm: readonly number[]): StridedLayout {
  return { offset: l.offset, shape: perm.map((p) => l.shape[p]!), strides: perm.map((p) => l.strides[p]!) };
}

/** Take `len` entries of `axis` from `start` every `step`. */
export function sliceLayout(l: StridedLayout, axis: number, start: number, len: number, step = 1): StridedLayout {
  const shape = [...l.shape];
  const strides = [...l.strides];
  shape[axis] = len;
  strides[axis] = l.strides[axis]! * step;
  return { offset: len > 0 ? l.offset + start * l.strides[axis]! : l.offset, shape, strides };
}

/** Entry `index` of `axis`, the axis dropped (a gather of one index). */
export function selectLayout(l: StridedLayout, axis: number, index: number): StridedLayout {
  return {
    offset: l.offset + index * l.strides[axis]!,
    shape: l.shape.filter((_, d) => d !== axis),
    strides: l.strides.filter((_, d) => d !== axis),
  };
}

/** Broadcast to `shape` (numpy rules, right-aligned): added and size-1 dims that grow get stride 0. */
export function expandLayout(l: StridedLayout, shape: readonly number[]): StridedLayout {
  const lead = shape.length - l.shape.length;
  return {
    offset: l.offset,
    shape: [...shape],
    strides: shape.map((d, i) => {
      const k = i - lead;
      if (k < 0) return 0;
      return l.shape[k] === 1 && d !== 1 ? 0 : l.strides[k]!;
    }),
  };
}

/**
 * The same elements, row-major order, viewed with a new shape (reshape / squeeze / unsqueeze / flatten), or
 * undefined when no strides express it (e.g. merging two dims a transpose swapped). Old dims are grouped into runs
 * that are contiguous with each other; each new dim must fall inside one run.
 */
export function reshapeLayout(l: StridedLayout, shape: readonly number[]): StridedLayout | undefined {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== l.shape.reduce((a, b) => a * b, 1)) return undefined;
  if (n === 0) return contiguousLayout(shape, l.offset);
  // runs of old dims (size-1 dims dropped): [size, stride of the run's innermost dim]
  const runs: { size: number; stride: number }[] = [];
  l.shape.forEach((d, i) => {
    if (d === 1) return;
    const last = runs[runs.length - 1];
    if (last && last.stride === d * l.strides[i]!) {
      last.size *= d;
      last.stride = l.strides[i]!;
    } else runs.push({ size: d, stride: l.strides[i]! });
  });
  const strides = new Array<number>(shape.length).fill(0);
  let r = runs.length - 1;
  let left = r >= 0 ? runs[r]!.size : 1; // elements of run r not yet covered by new dims (from the inside)
  let step = r >= 0 ? runs[r]!.stride : 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = shape[i]!;
    if (d === 1) continue;
    while (left === 1 && r > 0) {
      r--;
      left = runs[r]!.size;
      step = runs[r]!.stride;
    }
    if (left % d !== 0) return undefined;
    strides[i] = step;
    step *= d;
    left /= d;
  }
  // size-1 dims: any stride works; keep them row-major-looking
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] === 1) strides[i] = i + 1 < shape.length ? strides[i + 1]! * shape[i + 1]! : 1;
  }
  return { offset: l.offset, shape: [...shape], strides };
}

/**
 * Fewest dims with the same element order: size-1 dims dropped, neighbours merged where the outer one's stride is
 * the inner one's span (what codegen indexes with).
 */
export function simplifyLayout(l: StridedLayout): StridedLayout {
  const shape: number[] = [];
  const strides: number[] = [];
  l.shape.forEach((d, i) => {
    if (d === 1) return;
    const k = shape.length - 1;
    if (k >= 0 && strides[k] === d * l.strides[i]!) {
      shape[k] *= d;
      strides[k] = l.strides[i]!;
    } else {
      shape.push(d);
      strides.push(l.strides[i]!);
    }
  });
  return { offset: l.offset, shape, strides };
}

/** A cache key for a layout. */
export function layoutKey(l: StridedLayout): string {
  return `${l.offset}@${l.shape.join('x')}/${l.strides.join(',')}`;
}
