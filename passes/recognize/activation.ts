/**
 * Activations written out by exporters → kiln's ops: GELU (erf and tanh forms) and SiLU. Each pattern is the op's
 * reference formula (ir/ops/math.ts) with its constants, so the rewrite keeps the function; the replacement's type
 * must equal the root's, so a pattern that broadcasts x to a larger shape does not fire.
 */
import { op, rule, v, type Pattern, type Rule } from '../rewrite.js';
import { cube, exactly, near, product3 } from './util.js';

const x = v('x');
const half = exactly(undefined, 0.5);
const one = exactly(undefined, 1);
/** 1 + t: Add, or a two-input Sum (the ONNX Gelu function body). */
const onePlus = (t: Pattern) => op(['add', 'sum'], [t, one], { commutative: true });

/** x/√2 as Div(x, √2) or Mul(x, 1/√2). */
const xOverSqrt2: Pattern[] = [
  op('div', [x, near(undefined, Math.SQRT2)]),
  op('mul', [x, near(undefined, Math.SQRT1_2)]),
];

/** 0.5·x·(1 + erf(x/√2)) */
const geluErfPatterns = xOverSqrt2.flatMap((s) => product3(x, half, onePlus(op('erf', [s]))));

/** √(2/π)·(x + 0.044715·x³) */
const tanhArg = cube(x).map((c) =>
  op('mul', [near(undefined, Math.sqrt(2 / Math.PI)), op('add', [x, op('mul', [near(undefined, 0.044715), c])])]),
);
/** 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) */
const geluTanhPatterns = tanhArg.flatMap((t) => product3(x, half, onePlus(op('tanh', [t]))));

export const activationRules: Rule[] = [
  ...geluErfPatterns.map((p) => rule('gelu-erf', p, (m, rw) => rw.op('gelu', [m.v('x')])[0])),
  ...geluTanhPatterns.map((p) =>
    rule('gelu-tanh', p, (m, rw) => rw.op('gelu', [m.v('x')], { approximate: 'tanh' })[0]),
  ),
  rule('silu', op('mul', [x, op('sigmoid', [x])]), (m, rw) => rw.op('silu', [m.v('x')])[0]),
];
