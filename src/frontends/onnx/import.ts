/**
 * ONNX → kiln graph. Decodes the protobuf, maps graph inputs / initializers / Constant nodes to kiln values, inlines
 * model-local functions, and converts each node through the opset-aware converters in ./ops. Shape computations over
 * statically known shapes are folded while building, so reshape / slice targets become constants.
 */
import { GraphBuilder } from '../../../ir/builder.js';
import type { DType } from '../../../ir/dtype.js';
import { KilnError, ParseError, UnsupportedError, VerifyError } from '../../../ir/errors.js';
import type { Graph, Value } from '../../../ir/graph.js';
import type { Dim } from '../../../ir/shape.js';
import { makeTensor, type Tensor } from '../../../ir/tensor.js';
import '../../../ir/ops/index.js';
import { findConverter, hasConverter, type ConvertContext } from './convert.js';
import { kilnDtypeOf, onnxTypeName } from './dtypes.js';
import './ops/index.js';
import {
  decodeModel,
  externalDataRef,
  tensorValuesToFloat64,
  withExternalValues,
  type ExternalDataRef,
  type OnnxAttribute,
  type OnnxFunction,
  type OnnxGraph,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
  type OnnxType,
} from './proto.js';

export interface ImportOptions {
  /** Fold constant subgraphs while importing (default true). */
  foldConstants?: boolean;
  /**
   * Graph inputs to bind as constants (specialization): e.g. an `axes` or `split` input that the model computes at
   * run time but whose value the caller knows, so kiln can treat it as the attribute it is.
   */
  constants?: Readonly<Record<string, Tensor>>;
  /** Concrete values for symbolic input dims (e.g. { batch: 1 }): they become static. */
  dims?: Readonly<Record<string, number>>;
  /**
   * Where tensors stored outside the model (`data_location = EXTERNAL`, every model past 2 GB) are read from.
   * `importOnnxFile` sets a reader over the model's directory; without one such a tensor is an UnsupportedError.
   */
  externalData?: ExternalDataReader;
}

/**
 * Reads the bytes of external tensor data: `ref.length` bytes at `ref.offset` of the file `ref.location` (relative to
 * the model's directory). Only the ranges the tensors name are read. Errors should name `tensor` and the file.
 */
export interface ExternalDataReader {
  /** The `ref.length` bytes at `ref.offset` of `ref.location`; `tensor` is the name to put in errors. */
  read(ref: ExternalDataRef, tensor: string): Uint8Array;
}

export interface ImportedModel {
  graph: Graph;
  /** Opset per domain ('' is the default ONNX domain). */
  opsets: Map<string, number>;
}

/**
 * Import an ONNX model from its bytes (constants folded unless `opts.foldConstants` is false; external data needs
 * `opts.externalData` — or use {@link importOnnxFile}).
 *
 * @throws ParseError for malformed protobuf bytes or a model without opset_import.
 * @throws UnsupportedError naming the node or tensor for an op / opset / dtype / attribute kiln does not convert.
 * @throws VerifyError naming the node or tensor for a name used before it is defined, a cycle, a graph output never
 * produced or declared with another dtype, or a converted node that shape / dtype inference rejects.
 */
export function importOnnx(bytes: Uint8Array, opts: ImportOptions = {}): ImportedModel {
  return importOnnxModel(decodeModel(bytes), opts);
}

type NodeFs = typeof import('node:fs');
type NodePath = typeof import('node:path');

/**
 * Import an ONNX model from its file (Node only: `node:fs` is loaded on demand, so this module stays browser-safe).
 * Tensors with external data are read from files relative to the model's directory — only the byte ranges they
 * name, so a multi-GB weights file never sits in memory whole. A missing file, a location that leaves the model's
 * directory (`..`, an absolute path, a link pointing out) or a file shorter than offset + length is a ParseError
 * naming the tensor and the file.
 *
 * @throws KilnError (code `runtime`) when the model file cannot be read; otherwise as {@link importOnnx}.
 */
export async function importOnnxFile(path: string, opts: ImportOptions = {}): Promise<ImportedModel> {
  const fs: NodeFs = await import('node:fs');
  const paths: NodePath = await import('node:path');
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(path);
  } catch (e) {
    throw new KilnError('runtime', `cannot read ONNX model '${path}': ${(e as Error).message}`, {}, { cause: e });
  }
  if (opts.externalData) return importOnnx(bytes, opts);
  const reader = await externalDataFrom(paths.dirname(paths.resolve(path)));
  try {
    return importOnnx(bytes, { ...opts, externalData: reader });
  } finally {
    reader.close();
  }
}

/**
 * A reader of external data from files under `dir`, the model's directory (Node only) — for callers that decode the
 * model themselves and then `importOnnxModel(model, { externalData })`. File descriptors stay open until `close()`.
 *
 * @throws ParseError from `read` (naming the tensor and the file) when the file is missing, is not a regular file,
 * lies or links outside `dir`, or is shorter than offset + length.
 */
export async function externalDataFrom(dir: string): Promise<
  ExternalDataReader & {
    /** Closes every file opened so far (a later `read` reopens what it needs). */
    close(): void;
  }
> {
  const fs: NodeFs = await import('node:fs');
  const paths: NodePath = await import('node:path');
  const root = fs.realpathSync(dir);
  const inside = (p: string) => {
    const rel = paths.relative(root, p);
    return rel !== '' && rel !== '..' && !rel.startsWith(`..${paths.sep}`) && !paths.isAbsolute(rel);
  };
  const files = new Map<string, { fd: number; size: number }>();
  return {
    read(ref, tensor) {
      const fail = (message: string): never => {
        throw new ParseError(message, { tensor });
      };
      const name = `'${ref.location}'`;
      if (paths.isAbsolute(ref.location) || !inside(paths.resolve(root, ref.location))) {
        fail(`external data file ${name} is outside the model's directory`);
      }
      const file = paths.resolve(root, ref.location);
      let f = files.get(file);
      if (!f) {
        let real = '';
        try {
          real = fs.realpathSync(file);
        } catch {
          fail(`external data file ${name} is missing (looked in ${root})`);
        }
        if (!inside(real)) fail(`external data file ${name} links outside the model's directory`);
        const st = fs.statSync(real);
        if (!st.isFile()) fail(`external data file ${name} is not a regular file`);
        f = { fd: fs.openSync(real, 'r'), size: st.size };
        files.set(file, f);
      }
      if (ref.offset + ref.length > f.size) {
        fail(
          `external data file ${name} has ${f.size} bytes, shorter than offset ${ref.offset} + length ${ref.length}`,
        );
      }
      const out = new Uint8Array(ref.length);
      for (let done = 0; done < ref.length;) {
        // one read is at most 1 GiB (fs.readSync takes less than 2 GiB at a time)
        const n = fs.readSync(f.fd, out, done, Math.min(ref.length - done, 2 ** 30), ref.offset + done);
        if (n <= 0) fail(`external data file ${name} ended early at byte ${ref.offset + done}`);
        done += n;
      }
      return out;
    },
    close() {
      for (const f of files.values()) fs.closeSync(f.fd);
      files.clear();
    },
  };
}

/**
 * Import an already decoded ONNX model (see `decodeModel`): opsets per domain, functions inlined, Constant nodes and
 * initializers as constants (folded through the references unless `opts.foldConstants` is false).
 *
 * @throws ParseError when the model declares no opset_import.
 * @throws UnsupportedError naming the node or tensor for an op / opset / dtype / attribute kiln does not convert, or
 * external data without `opts.externalData`.
 * @throws VerifyError naming the node or tensor for a name used before it is defined, a cycle, a graph output never
 * produced or declared with another dtype, or a converted node that shape / dtype inference rejects.
 */
export function importOnnxModel(model: OnnxModel, opts: ImportOptions = {}): ImportedModel {
  const opsets = new Map<string, number>();
  for (const o of model.opsetImport) opsets.set(o.domain === 'ai.onnx' ? '' : o.domain, o.version);
  if (model.opsetImport.length === 0)
    throw new ParseError('ONNX model declares no opset_import (required by the spec)');
  const b = new GraphBuilder(model.graph.name || 'main');
  b.foldConstants = opts.foldConstants ?? true;
  const imp = new Importer(b, opsets, model.functions, opts);
  imp.importGraph(model.graph);
  return { graph: b.build(), opsets };
}

/**
 * A kiln tensor from an ONNX tensor; external data is read through `external` (typed error without one, naming the
 * tensor).
 *
 * @throws UnsupportedError naming the tensor for an unsupported dtype, segmented data, or external data without
 * `external`; the reader's ParseError for unreadable external data.
 */
export function tensorFromOnnx(t: OnnxTensor, what = t.name, external?: ExternalDataReader): Tensor {
  const dt = kilnDtypeOf(t.dataType);
  if (!dt) throw new UnsupportedError(`unsupported dtype ${onnxTypeName(t.dataType)}`, { tensor: what });
  if (t.externalData) {
    if (!external) {
      throw new UnsupportedError(
        "external tensor data needs the model's directory: import the model with importOnnxFile(path) or pass " +
          'ImportOptions.externalData',
        { tensor: what },
      );
    }
    const ref = externalDataRef(t);
    return tensorFromOnnx(withExternalValues(t, external.read(ref, t.name)), what);
  }
  if (t.segment) throw new UnsupportedError('segmented tensors are not supported', { tensor: what });
  return makeTensor(dt, t.dims, tensorValuesToFloat64(t));
}

/**
 * Nodes in a topological order. ONNX requires one, but real exporters (e.g. the GPT-2 export in the conformance set)
 * emit nodes out of order; ONNX Runtime sorts, so we do too (stable: the file's order where it is already valid).
 */
function topoOrder(g: OnnxGraph, available: Set<string>): OnnxNode[] {
  const producer = new Map<string, number>();
  g.nodes.forEach((n, i) => n.outputs.forEach((o) => o && producer.set(o, i)));
  const state = new Uint8Array(g.nodes.length); // 0 new, 1 visiting, 2 done
  const order: OnnxNode[] = [];
  const visit = (root: number) => {
    // iterative DFS: a deep chain (thousands of nodes) must not overflow the JS stack
    const stack: [number, number][] = [[root, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const [i, k] = top;
      const n = g.nodes[i]!;
      if (k === 0) {
        if (state[i] === 2) {
          stack.pop();
          continue;
        }
        state[i] = 1;
      }
      if (k < n.inputs.length) {
        top[1]++;
        const name = n.inputs[k]!;
        const p = name === '' || available.has(name) ? undefined : producer.get(name);
        if (p !== undefined) {
          if (state[p] === 1) {
            throw new VerifyError('the ONNX graph has a cycle', { node: n.name || n.opType, tensor: name });
          }
          if (state[p] === 0) stack.push([p, 0]);
        }
        continue;
      }
      state[i] = 2;
      order.push(n);
      stack.pop();
    }
  };
  for (let i = 0; i < g.nodes.length; i++) visit(i);
  return order;
}

class Importer {
  private readonly values = new Map<string, Value>();
  private anon = 0;
  constructor(
    private readonly b: GraphBuilder,
    private readonly opsets: Map<string, number>,
    private readonly functions: readonly OnnxFunction[],
    private readonly opts: ImportOptions,
  ) {}

  importGraph(g: OnnxGraph): void {
    const inits = new Set(g.initializers.map((t) => t.name));
    for (const t of g.initializers) {
      this.values.set(t.name, this.b.weight(t.name, tensorFromOnnx(t, t.name, this.opts.externalData)));
    }
    if (g.sparseInitializers.length) throw new UnsupportedError('sparse initializers are not supported');
    for (const vi of g.inputs) {
      if (inits.has(vi.name)) continue; // an initializer may be listed as an input too (old exporters)
      const bound = this.opts.constants?.[vi.name];
      if (bound) {
        this.values.set(vi.name, this.b.weight(vi.name, bound));
        continue;
      }
      const { dtype, shape } = this.tensorTypeOf(vi.type, vi.name);
      this.values.set(vi.name, this.b.input(vi.name, dtype, shape));
    }
    for (const n of topoOrder(g, new Set([...inits, ...g.inputs.map((v) => v.name)]))) this.convertNode(n, new Map());
    for (const vo of g.outputs) {
      const v = this.values.get(vo.name);
      if (!v) throw new VerifyError('graph output is never produced', { tensor: vo.name });
      if (vo.type.kind === 'tensor') {
        const dt = kilnDtypeOf(vo.type.elemType);
        if (dt && dt !== v.type.dtype) {
          throw new VerifyError(`output declared ${onnxTypeName(vo.type.elemType)} but computes ${v.type.dtype}`, {
            tensor: vo.name,
          });
        }
      }
      this.b.output(v, vo.name);
    }
  }

  private tensorTypeOf(t: OnnxType, name: string): { dtype: DType; shape: Dim[] } {
    if (t.kind !== 'tensor') throw new UnsupportedError(`${t.kind} values are not supported`, { tensor: name });
    const dtype = kilnDtypeOf(t.elemType);
    if (!dtype) throw new UnsupportedError(`unsupported dtype ${onnxTypeName(t.elemType)}`, { tensor: name });
    if (!t.shape) throw new UnsupportedError('inputs of unknown rank are not supported', { tensor: name });
    const shape = t.shape.map((d, i): Dim => {
      if (typeof d === 'number') return d;
      if (typeof d === 'string' && d !== '') return this.opts.dims?.[d] ?? d;
      return `${name}_d${i}`;
    });
    return { dtype, shape };
  }

  /** `scope` renames attribute references inside an inlined function body. */
  private convertNode(n: OnnxNode, refAttrs: Map<string, OnnxAttribute>): void {
    const nodeName = n.name || `${n.opType}_${this.anon++}`;
    const domain = n.domain === 'ai.onnx' ? '' : n.domain;
    const attributes = new Map<string, OnnxAttribute>();
    for (const [k, a] of n.attributes) {
      if (a.kind === 'ref') {
        const r = refAttrs.get(a.refAttrName);
        if (r) attributes.set(k, r);
      } else attributes.set(k, a);
    }
    const node: OnnxNode = { ...n, attributes };
    if (domain === '' && n.opType === 'Constant') {
      this.bind(node, [this.b.weight(this.b.unique(n.outputs[0] || nodeName), this.constantValue(node, nodeName))]);
      return;
    }
    const opset = this.opsets.get(domain);
    const fn = this.functions.find((f) => f.name === n.opType && f.domain === n.domain);
    if (fn) return this.inlineFunction(fn, node);
    const conv = opset === undefined ? undefined : findConverter(domain, n.opType, opset);
    if (!conv) {
      const why = hasConverter(domain, n.opType) ? ' (not at this opset)' : '';
      throw new UnsupportedError(
        `unsupported op ${n.opType} (${domain || 'ai.onnx'}, opset ${opset ?? 'none'})${why} at node '${nodeName}'`,
        { node: nodeName, op: n.opType },
      );
    }
    const ctx = this.context(node, nodeName, opset!);
    let outs: (Value | null)[];
    this.b.nodeHint = nodeName;
    try {
      outs = conv(ctx);
    } catch (e) {
      if (e instanceof KilnError) throw e;
      throw new VerifyError(`converting ${n.opType} failed: ${(e as Error).message}`, { node: nodeName, op: n.opType });
    } finally {
      this.b.nodeHint = undefined;
    }
    this.bind(node, outs);
  }

  private bind(n: OnnxNode, outs: readonly (Value | null)[]): void {
    n.outputs.forEach((name, i) => {
      if (name === '') return;
      const v = outs[i];
      if (!v) throw new UnsupportedError(`output ${i} of ${n.opType} is not produced`, { node: n.name, op: n.opType });
      // Results keep their ONNX names where free, so kiln's IR text and errors read like the source model.
      if (/^t\d+(_\d+)?$/.test(v.name)) this.b.rename(v, name);
      this.values.set(name, v);
    });
  }

  private constantValue(n: OnnxNode, nodeName: string): Tensor {
    const [key, a] = [...n.attributes.entries()][0] ?? [];
    const loc = { node: nodeName, op: 'Constant' };
    if (!a) throw new VerifyError('Constant without a value', loc);
    switch (a.kind) {
      case 'tensor':
        return tensorFromOnnx(a.value, nodeName, this.opts.externalData);
      case 'float':
        return makeTensor('f32', [], [a.value]);
      case 'floats':
        return makeTensor('f32', [a.value.length], a.value);
      case 'int':
        return makeTensor('i64', [], [a.value]);
      case 'ints':
        return makeTensor('i64', [a.value.length], a.value);
      default:
        throw new UnsupportedError(`Constant attribute ${key} (${a.kind}) is not supported`, loc);
    }
  }

  private inlineFunction(fn: OnnxFunction, call: OnnxNode): void {
    for (const o of fn.opsetImport) {
      const d = o.domain === 'ai.onnx' ? '' : o.domain;
      if (!this.opsets.has(d)) this.opsets.set(d, o.version);
    }
    const attrs = new Map(fn.attributeDefaults);
    for (const [k, v] of call.attributes) attrs.set(k, v);
    // Rename function-internal values to avoid clashes with the caller's names.
    const prefix = `${call.name || fn.name}/`;
    const rename = new Map<string, string>();
    fn.inputs.forEach((x, i) => rename.set(x, call.inputs[i] ?? ''));
    fn.outputs.forEach((x, i) => rename.set(x, call.outputs[i] ?? ''));
    const mapName = (x: string) => (x === '' ? '' : (rename.get(x) ?? prefix + x));
    for (const n of fn.nodes) {
      this.convertNode(
        { ...n, name: prefix + (n.name || n.opType), inputs: n.inputs.map(mapName), outputs: n.outputs.map(mapName) },
        attrs,
      );
    }
  }

  private context(node: OnnxNode, nodeName: string, opset: number): ConvertContext {
    const b = this.b;
    const loc = { node: nodeName, op: node.opType };
    const input = (i: number): Value | null => {
      const name = node.inputs[i];
      if (name === undefined || name === '') return null;
      const v = this.values.get(name);
      if (!v) throw new VerifyError(`input '${name}' is not defined before use`, { ...loc, tensor: name });
      return v;
    };
    const fail = (message: string): never => {
      throw new VerifyError(message, loc);
    };
    const attr = (name: string) => node.attributes.get(name);
    const get = <K extends OnnxAttribute['kind']>(
      name: string,
      kind: K,
    ): Extract<OnnxAttribute, { kind: K }> | undefined => {
      const a = attr(name);
      if (a === undefined) return undefined;
      if (a.kind !== kind) fail(`attribute '${name}' must be ${kind}, got ${a.kind}`);
      return a as Extract<OnnxAttribute, { kind: K }>;
    };
    const need = <T>(v: T | undefined, name: string): T => (v === undefined ? fail(`missing attribute '${name}'`) : v);
    const ctx: ConvertContext = {
      node,
      nodeName,
      opset,
      builder: b,
      numInputs: node.inputs.length,
      numOutputs: node.outputs.length,
      input,
      req: (i) => input(i) ?? fail(`input ${i} is required`),
      constInput: (i) => input(i)?.data,
      constInts(i, what) {
        const v = input(i);
        if (!v) return fail(`${what} (input ${i}) is required`);
        if (!v.data) {
          throw new UnsupportedError(`${what} must be a constant (input '${v.name}' is computed at run time)`, loc);
        }
        return Array.from(v.data.data);
      },
      hasAttr: (name) => attr(name) !== undefined,
      attr,
      int: (name, d) => get(name, 'int')?.value ?? need(d, name),
      float: (name, d) => get(name, 'float')?.value ?? need(d, name),
      str: (name, d) => get(name, 'string')?.value ?? need(d, name),
      ints: (name, d) => get(name, 'ints')?.value ?? [...need(d, name)],
      floats: (name, d) => get(name, 'floats')?.value ?? [...need(d, name)],
      tensor: (name) => tensorFromOnnx(need(get(name, 'tensor'), name).value, nodeName, this.opts.externalData),
      graph: (name) => need(get(name, 'graph'), name).value,
      emit: (op, inputs, attrs = {}) => b.opN(op, inputs, attrs, 1)[0]!,
      emitN: (op, inputs, attrs, k) => b.opN(op, inputs, attrs, k),
      constant: (dtype, values, shape) => b.const(dtype, values, shape ?? [values.length], nodeName),
      toTensor: (t) => tensorFromOnnx(t, nodeName, this.opts.externalData),
      dtype(code, what) {
        const dt = kilnDtypeOf(code);
        if (!dt) throw new UnsupportedError(`${what}: unsupported dtype ${onnxTypeName(code)}`, loc);
        return dt;
      },
      unsupported(message: string): never {
        throw new UnsupportedError(message, loc);
      },
      fail,
    };
    return ctx;
  }
}

export { ParseError };
