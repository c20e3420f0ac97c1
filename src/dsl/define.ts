/**
 * `defineOp`: a DSL function becomes a kiln op — elementwise over its broadcast inputs, with the function itself (run
 * in JS, float64) as the float64 reference, one pointwise kernel per device backend, and an expression builder the
 * fused lowering uses, so the op joins elementwise groups and matmul epilogues. Optionally an ONNX converter for a
 * node of a custom domain.
 */
import { ts } from 'ts-morph';
import { CUSTOM_EXPRS } from '../../codegen/lower/elementwise.js';
import { pointwiseSteps } from '../../codegen/lower/pointwise.js';
import { registerLowering } from '../../codegen/lower/registry.js';
import type { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { KilnError } from '../../ir/errors.js';
import type { Value } from '../../ir/graph.js';
import { registerFusibleOp } from '../../ir/ops/fused.js';
import { broadcastInfer, broadcastMap, req } from '../../ir/ops/util.js';
import { hasOp, registerOp, type OpDef } from '../../ir/registry.js';
import { tensorType } from '../../ir/types.js';
import { onnxOp } from '../frontends/onnx/convert.js';
import { exportOp } from '../frontends/onnx/export.js';
import type { DslFunction, DslType } from './ast.js';
import { emitDsl } from './emit.js';
import { INTRINSICS } from './intrinsics.js';
import { asExpression, parseDsl, type ParseOptions } from './parse.js';

/** A DSL function as JS: the reference. */
export type DslJsFunction = (...args: never[]) => number | boolean;

export interface DefineOpOptions extends Omit<ParseOptions, 'op'> {
  /** One-line description (the op registry's doc). */
  doc?: string;
  /** Also import ONNX nodes of this domain (and type, default the op's name) as the op. */
  onnx?: { domain: string; opType?: string };
}

/** A registered DSL op. */
export interface CustomOp {
  readonly name: string;
  readonly dsl: DslFunction;
  readonly inputs: readonly DslType[];
  readonly output: DslType;
  /** The function in JS (float64): the reference. */
  readonly js: (...args: (number | boolean)[]) => number | boolean;
  /** Add the op to a graph (inputs broadcast). */
  apply(b: GraphBuilder, ...xs: Value[]): Value;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A DSL source string as a JS function (types stripped by the TypeScript transpiler, intrinsics in scope). */
function jsOf(
  source: string,
  constants: Readonly<Record<string, number | boolean>>,
): (...args: (number | boolean)[]) => number | boolean {
  const js = ts.transpileModule(`const __kiln_dsl = (\n${asExpression(source).code}\n);`, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.None },
  }).outputText;
  const scope: Record<string, unknown> = { ...INTRINSICS, ...constants };
  const names = Object.keys(scope);
  const make = new Function(...names, `${js}\nreturn __kiln_dsl;`) as (...xs: unknown[]) => never;
  return make(...names.map((n) => scope[n]));
}

/**
 * Define a custom op from a DSL function (source text, or a function object: give `inputs` / `output` types then,
 * since a compiled function's `.toString()` has no annotations). Throws a `DslError` at the source's line and column
 * for anything the DSL does not accept.
 */
export function defineOp(name: string, fn: string | DslJsFunction, opts: DefineOpOptions = {}): CustomOp {
  if (!NAME.test(name)) throw new KilnError('verify', `custom op name '${name}' must be an identifier`, { op: name });
  if (hasOp(name)) throw new KilnError('verify', `op ${name} is already defined`, { op: name });
  const dsl = parseDsl(fn, { ...opts, op: name });
  if (dsl.params.length === 0) {
    throw new KilnError('verify', `custom op ${name} needs at least one input (its output shape is theirs)`, {
      op: name,
    });
  }
  let js: CustomOp['js'];
  try {
    js = typeof fn === 'string' ? jsOf(fn, opts.constants ?? {}) : (fn as unknown as CustomOp['js']);
  } catch (e) {
    throw new KilnError('parse', `the DSL source does not evaluate as JavaScript: ${(e as Error).message}`, {
      op: name,
    });
  }
  const inputs = dsl.params.map((p) => p.type);
  const output = dsl.result;
  const isBool = inputs.map((t) => t === 'bool');

  const def: OpDef = {
    name,
    doc: opts.doc ?? `custom op (kiln/dsl): ${dsl.source.split('\n')[0]!.slice(0, 80)}`,
    inputs: dsl.params.map((p) => ({ name: p.name })),
    outputs: [{ name: 'y' }],
    attrs: {},
    fusion: inputs.length === 1 ? 'elementwise' : 'broadcast',
    infer(ctx) {
      inputs.forEach((t, i) => {
        const got = req(ctx, i).dtype;
        if (got !== t) ctx.fail(`input ${i} ('${dsl.params[i]!.name}') is ${got}, the DSL function takes ${t}`);
      });
      return [
        tensorType(
          output as DType,
          broadcastInfer(
            ctx,
            inputs.map((_, i) => i),
          ),
        ),
      ];
    },
    reference(xs) {
      return [
        broadcastMap(output as DType, xs as never, (...vs) => {
          const r = js(...vs.map((x, i) => (isBool[i] ? x !== 0 : x)));
          return typeof r === 'boolean' ? (r ? 1 : 0) : r;
        }),
      ];
    },
  };
  registerOp(def);
  const expr = CUSTOM_EXPRS;
  expr.set(name, (xs, ctx, kb) => emitDsl(dsl, kb, xs, ctx));
  registerLowering(name, (ctx) => {
    const reads = ctx.inputs.map((_, i) => i);
    return pointwiseSteps(ctx, {
      label: name,
      reads,
      value: (p) =>
        emitDsl(
          dsl,
          p.kb,
          reads.map((i) => p.loadBroadcast(i)),
          ctx,
        ),
    });
  });
  registerFusibleOp(name);
  if (opts.onnx) {
    const { domain } = opts.onnx;
    const opType = opts.onnx.opType ?? name;
    onnxOp(
      opType,
      (ctx) => [
        ctx.emit(
          name,
          inputs.map((_, i) => ctx.req(i)),
        ),
      ],
      1,
      domain,
    );
    // and back: ONNX export writes the node in that domain (version 1)
    exportOp(name, (ctx) => ctx.emit(opType, ctx.ins, ctx.outs, [], domain));
  }
  return {
    name,
    dsl,
    inputs,
    output,
    js,
    apply: (b, ...xs) => {
      if (xs.length !== inputs.length) {
        throw new KilnError('verify', `custom op ${name} takes ${inputs.length} input(s), got ${xs.length}`, {
          op: name,
        });
      }
      return b.op(name, xs);
    },
  };
}
