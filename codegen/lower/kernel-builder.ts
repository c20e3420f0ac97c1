/**
 * Building kernels during lowering: parameters with their run-time values, fresh local names, statements.
 * A lowering returns LoweredSteps: a kernel plus what to bind (node inputs / outputs / scratch buffers), the uniform
 * values for these shapes, and the grid.
 */
import type { Attrs } from '../../ir/registry.js';
import type { DType } from '../../ir/dtype.js';
import type { StridedLayout } from '../../ir/layout.js';
import type { Tensor } from '../../ir/tensor.js';
import {
  builtin,
  c,
  cast,
  kernelHash,
  uni,
  type BufferParam,
  type Expr,
  type KType,
  type Kernel,
  type SharedArray,
  type Stmt,
  type Storage,
  type UniformParam,
} from '../kir.js';
import { storageOf, type DeviceCaps } from './storage.js';

export type Binding =
  | { kind: 'in'; index: number }
  | { kind: 'out'; index: number }
  | { kind: 'tmp'; id: string; bytes: number }
  /** The run's error-flag words (u32); the kernel writes its node's slot when an input is out of its domain. */
  | { kind: 'err' };

/**
 * What a kernel reports through its error flag (see {@link KernelBuilder.raiseIf}). The executor reads the flags back
 * after a run and raises a typed error naming the node — bad data never comes back as numbers.
 */
export const DEVICE_ERRORS = {
  1: 'index out of range',
  2: 'position past the end of the cache',
  3: 'integer result outside the 32-bit range the device holds 64-bit integers in',
} as const;
export type DeviceErrorCode = keyof typeof DEVICE_ERRORS;

export interface LoweredStep {
  kernel: Kernel;
  bindings: Binding[];
  /** Values of kernel.uniforms, in order. */
  uniforms: number[];
  /** Index of the uniform holding the node's error-flag slot (the executor sets it per run), if the kernel has one. */
  errSlot?: number;
  /** Workgroups per dimension. */
  grid: [number, number, number];
  /** Inputs this step indexes through their `layout` itself (offset and strides), so no load rewriting applies. */
  physicalInputs?: readonly number[];
}

export interface TensorInfo {
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Host-known data (constants, shape computations): lowerings may specialize on it. */
  readonly data?: Tensor;
  /**
   * Where the elements lie when the input is a strided view of another tensor's buffer (a movement op's result).
   * Loads index row-major and are remapped after lowering, unless the step lists the input in `physicalInputs`.
   */
  readonly layout?: StridedLayout;
}

export interface LowerCtx {
  readonly caps: DeviceCaps;
  readonly node: string;
  readonly op: string;
  readonly attrs: Attrs;
  readonly inputs: readonly (TensorInfo | undefined)[];
  readonly outputs: readonly TensorInfo[];
  /** Output 0 shares the buffer of input `OpDef.inplace` (the lowering then only writes what changes). */
  readonly inplace?: boolean;
}

/**
 * Builds one kernel during a lowering: declares buffers (bound to node inputs / outputs / scratch), scalar uniforms
 * with this launch's values, shared arrays and fresh locals, collects statements, and `build`s the step (the kernel
 * named by its structural hash, its bindings, uniform values and grid).
 */
export class KernelBuilder {
  readonly buffers: BufferParam[] = [];
  readonly bindings: Binding[] = [];
  readonly uniforms: UniformParam[] = [];
  readonly uniformValues: number[] = [];
  readonly shared: SharedArray[] = [];
  body: Stmt[] = [];
  private counter = 0;

  /** `label` (usually the node name) goes into the kernel's name; `caps` decide storage formats and limits. */
  constructor(
    readonly label: string,
    readonly caps: DeviceCaps,
  ) {}

  /** Declare a buffer parameter bound to `binding`; returns its name. */
  buffer(binding: Binding, storage: Storage, access: 'read' | 'read_write'): string {
    const name = `b${this.buffers.length}`;
    this.buffers.push({ name, storage, access });
    this.bindings.push(binding);
    return name;
  }

  /** Buffer for node input i / output i in the dtype's storage. */
  input(ctx: LowerCtx, i: number): string {
    return this.buffer({ kind: 'in', index: i }, storageOf(ctx.inputs[i]!.dtype, this.caps), 'read');
  }
  /** Buffer for node output i in the dtype's storage (read-write). */
  output(ctx: LowerCtx, i: number): string {
    return this.buffer({ kind: 'out', index: i }, storageOf(ctx.outputs[i]!.dtype, this.caps), 'read_write');
  }

  private readonly uniformKeys = new Map<string, Expr>();
  private err: { buf: string; slot: Expr; index: number } | undefined;

  /**
   * Report `code` when `cond` holds (e.g. a token id past the embedding): the kernel stores the code in its node's
   * error-flag word; the executor raises a typed error naming the node after the run. The caller still keeps the
   * access in bounds (clamps), so a bad input costs an error, never an out-of-bounds read.
   */
  raiseIf(cond: Expr, code: DeviceErrorCode): void {
    if (!this.err) {
      const buf = this.buffer({ kind: 'err' }, 'u32', 'read_write');
      const slot = this.uniform('eslot', 0, 'u32');
      this.err = { buf, slot, index: this.uniforms.length - 1 };
    }
    // One flag word per run: epoch · 2^16 + (node slot + 1) · 8 + code, epoch and slot set by the executor in the
    // uniform. Concurrent failures overwrite each other; any one of them names a failing node, and a run that sets
    // none leaves an older epoch's value (or 0), which the executor ignores.
    const value: Expr = { k: 'bin', type: 'u32', op: 'add', a: this.err.slot, b: c.u32(code) };
    this.emit({ k: 'if', cond, then: [{ k: 'store', buf: this.err.buf, index: c.i32(0), value }] });
  }

  /**
   * A scalar uniform with its value for this launch. Integers must fit i32 (index math is 32-bit). Uniforms with the
   * same `key` (a name for what the value means, e.g. 'out.dim.2') are declared once.
   */
  uniform(hint: string, value: number, type: 'i32' | 'u32' | 'f32' = 'i32', key?: string): Expr {
    if (key !== undefined) {
      const hit = this.uniformKeys.get(key);
      if (hit) return hit;
    }
    const name = `${hint}${this.uniforms.length}`;
    this.uniforms.push({ name, type });
    this.uniformValues.push(value);
    const e = uni(name, type);
    if (key !== undefined) this.uniformKeys.set(key, e);
    return e;
  }

  /** Declare a workgroup-shared array of `size` elements of `type`; returns its name (for `sload` / `sstore`). */
  sharedArray(hint: string, type: KType, size: number): string {
    const name = `sh_${hint}${this.shared.length}`;
    this.shared.push({ name, type, size });
    return name;
  }

  /** A local name: `hint_N`, disjoint from parameters (`bN` buffers, `hintN` uniforms, `sh_hintN` shared arrays). */
  fresh(hint: string): string {
    return `${hint}_${this.counter++}`;
  }

  /** Emit `let` and return the variable. */
  let(hint: string, e: Expr): Expr {
    if (e.k === 'const' || e.k === 'var' || e.k === 'uniform') return e;
    const name = this.fresh(hint);
    this.body.push({ k: 'let', name, value: e });
    return { k: 'var', name, type: e.type };
  }

  /** Append statements to the current body (the kernel's, or the one `collect` gathers). */
  emit(...s: Stmt[]): void {
    this.body.push(...s);
  }

  /** Statements emitted while `fn` runs (for bodies of ifs and loops), with the value it returns. */
  collect<T>(fn: () => T): [Stmt[], T] {
    const saved = this.body;
    this.body = [];
    try {
      const r = fn();
      return [this.body, r];
    } finally {
      this.body = saved;
    }
  }

  /** Linear workgroup index over a 2-D grid (x fastest), so launches past 65535 groups still work. */
  groupIndex(): Expr {
    return this.let(
      'g',
      cast('i32', {
        k: 'bin',
        type: 'u32',
        op: 'add',
        a: builtin('group_id', 0),
        b: { k: 'bin', type: 'u32', op: 'mul', a: builtin('group_id', 1), b: builtin('num_groups', 0) },
      }),
    );
  }

  /** The thread's index in its workgroup along x, as an i32 local. */
  localIndex(): Expr {
    return this.let('l', cast('i32', builtin('local_id', 0)));
  }

  /**
   * The finished step: the kernel with `workgroup` threads per group, launched over `grid` workgroups (see
   * {@link grid1d}); the kernel's name is `k_<label>_<hash>`.
   */
  build(workgroup: readonly [number, number, number], grid: [number, number, number]): LoweredStep {
    const draft: Kernel = {
      name: '',
      buffers: this.buffers,
      uniforms: this.uniforms,
      shared: this.shared,
      workgroup: [...workgroup] as [number, number, number],
      body: this.body,
    };
    const kernel = {
      ...draft,
      name: `k_${this.label.replace(/[^A-Za-z0-9_]/g, '_')}_${kernelHash(draft).slice(0, 10)}`,
    };
    return { kernel, bindings: this.bindings, uniforms: this.uniformValues, grid, errSlot: this.err?.index };
  }
}

/** Split `groups` workgroups over x and y within the per-dimension limit. */
export function grid1d(groups: number, caps: DeviceCaps): [number, number, number] {
  if (groups <= caps.maxGroupsPerDim) return [Math.max(groups, 1), 1, 1];
  const y = Math.ceil(groups / caps.maxGroupsPerDim);
  return [Math.ceil(groups / y), y, 1];
}

/** An i32 literal (shorthand for `c.i32`). */
export const i32 = c.i32;
