/**
 * The op registry: the one place an op is defined — signature, typed attributes, shape/dtype inference, fusion kind
 * and the float64 reference implementation that *is* the op's specification.
 */
import type { DType } from './dtype.js';
import { KilnError, UnsupportedError, VerifyError } from './errors.js';
import type { StridedLayout } from './layout.js';
import type { Dim } from './shape.js';
import type { Tensor } from './tensor.js';
import type { TensorType } from './types.js';

export type AttrKind = 'int' | 'float' | 'bool' | 'string' | 'ints' | 'floats' | 'strings' | 'dtype' | 'tensor';
export type AttrValue = number | boolean | string | readonly number[] | readonly string[] | Tensor;
export type Attrs = Readonly<Record<string, AttrValue>>;

export interface AttrSpec {
  readonly kind: AttrKind;
  /** Default value; an attribute without a default is required. */
  readonly default?: AttrValue;
  /** Allowed values for string attributes. */
  readonly oneOf?: readonly string[];
  /** Optional attribute with no default (absence is meaningful). */
  readonly optional?: boolean;
}

/** TVM-style fusion kinds: they drive the fusion pass. */
export type FusionKind = 'elementwise' | 'broadcast' | 'injective' | 'reduce' | 'opaque';

export interface PortSpec {
  readonly name: string;
  /** May be absent (`_` in IR text, null in the node's input list). */
  readonly optional?: boolean;
  /** Last port only: takes any number of values (≥ 1 unless optional). */
  readonly variadic?: boolean;
}

export interface InferContext {
  /** Node name, for error locations. */
  readonly node: string;
  readonly op: string;
  /** Input types; undefined for an absent optional input. */
  readonly inputs: readonly (TensorType | undefined)[];
  readonly attrs: Attrs;
  /** How many outputs the node declares. */
  readonly numOutputs: number;
  /** The value of input `i` when it is a graph constant (for shape inputs such as reshape's target shape). */
  constValue(i: number): Tensor | undefined;
  /**
   * The elements of input `i` as dims when they are known: a small integer constant (as numbers), or a shape
   * computation whose value is a known expression of the input dims (Shape → Gather → Concat …) although its data
   * is computed at run time. Row-major, one entry per element; undefined when unknown.
   */
  symbolicValue(i: number): readonly Dim[] | undefined;
  /** Throw a VerifyError located at this node. */
  fail(message: string): never;
}

export interface RefContext {
  readonly node: string;
  readonly op: string;
  readonly numOutputs: number;
  /** The dtypes the node's outputs were inferred to have. */
  readonly outputDtypes: readonly DType[];
  /** Throw a KilnError located at this node (a reference's run-time check, e.g. an index out of range). */
  fail(message: string): never;
}

/** What `OpDef.layout` sees besides input 0's layout. */
export interface LayoutContext {
  /** Resolved attributes. */
  readonly attrs: Attrs;
  /** Host values of the inputs: null for an absent optional input, undefined where only the device has the data. */
  readonly hostInputs: readonly (Tensor | null | undefined)[];
  /** Concrete output shapes (already inferred). */
  readonly outShapes: readonly (readonly number[])[];
}

export interface OpDef {
  readonly name: string;
  readonly doc: string;
  readonly inputs: readonly PortSpec[];
  readonly outputs: readonly PortSpec[];
  readonly attrs: Readonly<Record<string, AttrSpec>>;
  readonly fusion: FusionKind;
  /**
   * Output 0 holds input 0's elements in the same row-major order (reshape, squeeze...): a backend may alias the
   * buffer instead of copying.
   */
  readonly view?: boolean;
  /**
   * Output 0 may be computed in place in this input's buffer (an update such as a KV-cache write): the executor aliases
   * them when the input's buffer is the run's to overwrite (a device tensor fed by the caller, or a temporary with no
   * other reader). The reference stays functional: it returns a new tensor.
   */
  readonly inplace?: number;
  /**
   * Optional, for movement ops: each output as a strided layout over input 0's elements, given input 0's layout
   * (concrete shapes), so a backend may hand consumers a view instead of running a copy. Undefined (for the node, or
   * for one output) where this instance is not expressible by strides or needs device data.
   */
  layout?(x: StridedLayout, ctx: LayoutContext): readonly (StridedLayout | undefined)[] | undefined;
  /** Output types from input types and attributes (symbolic dims allowed). */
  infer(ctx: InferContext): TensorType[];
  /**
   * float64 reference semantics. Inputs arrive rounded to their dtypes; outputs are rounded to the inferred output
   * dtypes by the interpreter, so an op computes in float64 and need not round itself.
   */
  reference(inputs: readonly (Tensor | undefined)[], attrs: Attrs, ctx: RefContext): Tensor[];
  /**
   * Optional: outputs computable from input *types* alone (shape / size of a statically shaped tensor), so constant
   * folding does not need the data.
   */
  foldFromTypes?(ctx: InferContext): Tensor[] | undefined;
  /**
   * Optional: the symbolic values of the outputs (see `InferContext.symbolicValue`) from those of the inputs, for ops
   * that compute on shapes. Only asked for outputs of integer (or bool) dtype with a small static element count (`types` are
   * the inferred output types); an entry must hold one dim per element, or be undefined when unknown.
   */
  symbolic?(ctx: InferContext, types: readonly TensorType[]): readonly (readonly Dim[] | undefined)[] | undefined;
}

const REGISTRY = new Map<string, OpDef>();

/**
 * Adds an op to the registry (its one definition: ports, attributes, inference, reference) and returns it.
 *
 * @throws KilnError (code `verify`) when an op of that name is already registered.
 */
export function registerOp(def: OpDef): OpDef {
  if (REGISTRY.has(def.name)) throw new KilnError('verify', `op ${def.name} registered twice`);
  REGISTRY.set(def.name, def);
  return def;
}

/**
 * The definition of op `name`.
 *
 * @throws UnsupportedError naming the op (and `loc.node` when given) when no such op is registered.
 */
export function getOp(name: string, loc: { node?: string } = {}): OpDef {
  const d = REGISTRY.get(name);
  if (!d) throw new UnsupportedError(`unknown op ${name}`, { ...loc, op: name });
  return d;
}

/** Whether an op named `name` is registered. */
export function hasOp(name: string): boolean {
  return REGISTRY.has(name);
}

/** Every registered op, in registration order. */
export function allOps(): OpDef[] {
  return [...REGISTRY.values()];
}

/**
 * Fill defaults and check attribute kinds; unknown attributes are an error (typos must not pass silently).
 *
 * @throws VerifyError naming the node for an unknown attribute, a missing required one, a value of the wrong kind, or
 * a string outside the attribute's allowed values.
 */
export function resolveAttrs(def: OpDef, attrs: Attrs, node: string): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const k of Object.keys(attrs)) {
    if (!(k in def.attrs)) throw new VerifyError(`unknown attribute '${k}' for op ${def.name}`, { node, op: def.name });
  }
  for (const [k, spec] of Object.entries(def.attrs)) {
    const v = attrs[k];
    if (v === undefined) {
      if (spec.default !== undefined) out[k] = spec.default;
      else if (!spec.optional)
        throw new VerifyError(`missing required attribute '${k}' of op ${def.name}`, { node, op: def.name });
      continue;
    }
    if (!attrKindMatches(spec.kind, v)) {
      throw new VerifyError(`attribute '${k}' of op ${def.name} must be ${spec.kind}`, { node, op: def.name });
    }
    if (spec.oneOf && !spec.oneOf.includes(v as string)) {
      throw new VerifyError(`attribute '${k}' of op ${def.name} must be one of ${spec.oneOf.join(', ')}, got '${v}'`, {
        node,
        op: def.name,
      });
    }
    out[k] = v;
  }
  return out;
}

/** Whether attribute value `v` has kind `kind` (`int` needs an integer, `ints` an array of integers …). */
export function attrKindMatches(kind: AttrKind, v: AttrValue): boolean {
  switch (kind) {
    case 'int':
      return typeof v === 'number' && Number.isInteger(v);
    case 'float':
      return typeof v === 'number';
    case 'bool':
      return typeof v === 'boolean';
    case 'string':
    case 'dtype':
      return typeof v === 'string';
    case 'ints':
      return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isInteger(x));
    case 'floats':
      return Array.isArray(v) && v.every((x) => typeof x === 'number');
    case 'strings':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'tensor':
      return typeof v === 'object' && v !== null && !Array.isArray(v) && 'data' in v;
  }
}

// Typed attribute accessors for op definitions (no check: attributes were resolved by `resolveAttrs`).
/** Attribute `k` as an integer. */
export const attrInt = (a: Attrs, k: string): number => a[k] as number;
/** Attribute `k` as a float. */
export const attrFloat = (a: Attrs, k: string): number => a[k] as number;
/** Attribute `k` as a boolean. */
export const attrBool = (a: Attrs, k: string): boolean => a[k] as boolean;
/** Attribute `k` as a string (also dtype attributes). */
export const attrStr = (a: Attrs, k: string): string => a[k] as string;
/** Attribute `k` as a list of integers, or undefined when absent (an optional attribute). */
export const attrInts = (a: Attrs, k: string): readonly number[] | undefined => a[k] as readonly number[] | undefined;
