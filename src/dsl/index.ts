/** kiln/dsl — scalar TypeScript functions as custom ops and fused epilogues (issue 16).
 *
 * @module kiln/dsl
 */
export * from './intrinsics.js';
export {
  DslError,
  DSL_TYPES,
  type DBin,
  type DslType,
  type DslFunction,
  type DslParam,
  type DExpr,
  type DStmt,
  type VType,
} from './ast.js';
export { parseDsl, MAX_LOOP_ITERATIONS, type ParseOptions } from './parse.js';
export { emitDsl } from './emit.js';
export { defineOp, type CustomOp, type DefineOpOptions, type DslJsFunction } from './define.js';
