/** The typed DSL AST the parser (parse.ts) produces and the emitter (emit.ts) turns into kernel IR. */
import { KilnError, type KilnErrorCode } from '../../ir/errors.js';

/** Types a DSL function's parameters and result may have (TypeScript aliases in intrinsics.ts). */
export type DslType = 'f32' | 'f16' | 'i32' | 'u32' | 'bool';
/** Types values have inside the function: f16 computes in f32. */
export type VType = 'f32' | 'i32' | 'u32' | 'bool';

export const DSL_TYPES: readonly DslType[] = ['f32', 'f16', 'i32', 'u32', 'bool'];
export const valueType = (t: DslType): VType => (t === 'f16' ? 'f32' : t);

export type DBin =
  | 'add'
  | 'sub'
  | 'mul'
  | 'div'
  | 'mod'
  | 'pow'
  | 'lt'
  | 'le'
  | 'gt'
  | 'ge'
  | 'eq'
  | 'ne'
  | 'and'
  | 'or'
  | 'bitand'
  | 'bitor'
  | 'bitxor';

export type DExpr =
  /** A number or boolean; `flex` while a bare literal's type is still open (it takes its context's type). */
  | { readonly k: 'lit'; readonly t: VType; readonly v: number; readonly flex?: boolean }
  | { readonly k: 'param'; readonly t: VType; readonly i: number }
  | { readonly k: 'local'; readonly t: VType; readonly id: number }
  | { readonly k: 'un'; readonly t: VType; readonly op: 'neg' | 'not' | 'bitnot'; readonly a: DExpr }
  | { readonly k: 'bin'; readonly t: VType; readonly op: DBin; readonly a: DExpr; readonly b: DExpr }
  /** An intrinsic (by its DSL name: `exp`, `min`, `select`, …). */
  | { readonly k: 'call'; readonly t: VType; readonly fn: string; readonly args: readonly DExpr[] }
  | { readonly k: 'cast'; readonly t: VType; readonly to: DslType; readonly a: DExpr }
  | { readonly k: 'sel'; readonly t: VType; readonly c: DExpr; readonly a: DExpr; readonly b: DExpr };

export type DStmt =
  | { readonly k: 'decl'; readonly id: number; readonly t: VType; readonly init: DExpr; readonly mutable: boolean }
  | { readonly k: 'assign'; readonly id: number; readonly value: DExpr }
  | { readonly k: 'if'; readonly c: DExpr; readonly then: readonly DStmt[]; readonly else: readonly DStmt[] }
  /** `for (let i = start; i < end; i += step)`, constant bounds; `i` is local `id` (i32, read-only). */
  | {
      readonly k: 'for';
      readonly id: number;
      readonly start: number;
      readonly end: number;
      readonly step: number;
      readonly body: readonly DStmt[];
    }
  | { readonly k: 'return'; readonly value: DExpr };

export interface DslParam {
  readonly name: string;
  readonly type: DslType;
}

/** A checked DSL function. */
export interface DslFunction {
  readonly params: readonly DslParam[];
  readonly result: DslType;
  readonly body: readonly DStmt[];
  /** Types of locals by id. */
  readonly locals: readonly VType[];
  /** The source as given (a function's `.toString()` for a function object). */
  readonly source: string;
  readonly file: string;
}

/**
 * A DSL source error located in the user's file: `line` / `column` are 1-based; the message starts with
 * `file:line:column:` and names the construct.
 */
export class DslError extends KilnError {
  /** `detail` is the message without the location; `op` the custom op being defined, when known. */
  constructor(
    code: KilnErrorCode,
    readonly detail: string,
    readonly file: string,
    readonly line: number,
    readonly column: number,
    op?: string,
  ) {
    super(code, `${file}:${line}:${column}: ${detail}`, op ? { op } : {});
    this.name = 'DslError';
  }
}
