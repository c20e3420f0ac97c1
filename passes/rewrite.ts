/**
 * Rewrite rules over the IR (after tinygrad's UPat / PatternMatcher): a pattern with named captures and
 * constraints, a builder that returns the replacement values, and one fixed-point driver over the graph's use
 * index. The driver visits a worklist — every node once, then only the neighbours of what changed — so a rewrite
 * costs O(its neighbourhood), never a rescan of the graph.
 *
 * ```ts
 * rule('mul-one', op('mul', [v('x'), constant('one', (t) => allEqual(t, 1))]), (m) => m.v('x'))
 * ```
 */
import { KilnError } from '../ir/errors.js';
import { Node, Value, type Graph } from '../ir/graph.js';
import { inferOp } from '../ir/infer.js';
import type { Attrs } from '../ir/registry.js';
import { makeTensor, type Tensor } from '../ir/tensor.js';
import { typeToString } from '../ir/types.js';
import type { DType } from '../ir/dtype.js';

// ---- patterns ----------------------------------------------------------------------------------------------------

export type Pattern = ValuePattern | OpPattern;

export interface ValuePattern {
  readonly kind: 'value';
  readonly name?: string;
  readonly constOnly: boolean;
  /** An extra constraint on the value (and its data when it is a constant); the pattern fails when it returns false. */
  readonly where?: (v: Value, t: Tensor | undefined) => boolean;
}

export interface OpPattern {
  readonly kind: 'op';
  /** Op names; undefined matches any op. */
  readonly ops?: ReadonlySet<string>;
  readonly inputs?: readonly Pattern[];
  /** Which output of the node the value is (default 0). */
  readonly output: number;
  readonly name?: string;
  /** A constraint on the node's attributes (as written on the node: defaults not filled in). */
  readonly attrs?: (a: Attrs, n: Node) => boolean;
  /** Match the two inputs in either order (default: on for the commutative ops). */
  readonly commutative: boolean;
}

/** Binary ops whose operands may be swapped. */
export const COMMUTATIVE = new Set(['add', 'mul', 'max', 'min', 'and', 'or', 'xor', 'equal']);

/** Any value, bound to `name`; a name bound twice must bind the same value. */
export function v(name?: string, where?: (v: Value) => boolean): ValuePattern {
  return { kind: 'value', name, constOnly: false, where: where && ((x) => where(x)) };
}

/** A graph constant, bound to `name`, optionally constrained on its data. */
export function constant(name?: string, where?: (t: Tensor, v: Value) => boolean): ValuePattern {
  return { kind: 'value', name, constOnly: true, where: where && ((x, t) => where(t!, x)) };
}

export interface OpOptions {
  /** Bind the node itself under this name (`m.node(name)`). */
  name?: string;
  /** A constraint on the node's attributes (as written on the node: defaults not filled in). */
  attrs?: (a: Attrs, n: Node) => boolean;
  /** Which output of the node the matched value is (default 0). */
  output?: number;
  /** Match the two inputs in either order (default: true when every op in the pattern is in {@link COMMUTATIVE}). */
  commutative?: boolean;
}

/** The result of a node with op `ops` (a name, a list, or undefined for any) whose inputs match `inputs`. */
export function op(
  ops: string | readonly string[] | undefined,
  inputs?: readonly Pattern[],
  o: OpOptions = {},
): OpPattern {
  const set = ops === undefined ? undefined : new Set(typeof ops === 'string' ? [ops] : ops);
  return {
    kind: 'op',
    ops: set,
    inputs,
    output: o.output ?? 0,
    name: o.name,
    attrs: o.attrs,
    commutative: o.commutative ?? (set !== undefined && [...set].every((x) => COMMUTATIVE.has(x))),
  };
}

/** Every element of `t` equals `x` (NaN never does). */
export function allEqual(t: Tensor, x: number): boolean {
  for (let i = 0; i < t.data.length; i++) if (t.data[i] !== x) return false;
  return true;
}

// ---- matching ----------------------------------------------------------------------------------------------------

/** What a pattern bound: values and nodes by name, and the node the rule was tried on. */
export class Match {
  /** Made by the matcher ({@link matchAt}); rules only read it. */
  constructor(
    /** The node the rule was tried on. */
    readonly root: Node,
    readonly values: Map<string, Value>,
    readonly nodes: Map<string, Node>,
  ) {}
  /** The value bound to `name`. */
  v(name: string): Value {
    const x = this.values.get(name);
    if (!x) throw new KilnError('verify', `pattern binds no value '${name}'`);
    return x;
  }
  /** The node bound to `name`. */
  node(name: string): Node {
    const n = this.nodes.get(name);
    if (!n) throw new KilnError('verify', `pattern binds no node '${name}'`);
    return n;
  }
  /** Constant data bound to `name`. */
  data(name: string): Tensor {
    return this.v(name).data!;
  }
}

type Bindings = { values: Map<string, Value>; nodes: Map<string, Node> };

function bindValue(b: Bindings, name: string | undefined, x: Value): boolean {
  if (name === undefined) return true;
  const had = b.values.get(name);
  if (had) return had === x;
  b.values.set(name, x);
  return true;
}

/** Try to match `p` against value `x`; bindings are extended on success and may be dirty on failure. */
function matchValue(p: Pattern, x: Value | null, b: Bindings): boolean {
  if (x === null) return false;
  if (p.kind === 'value') {
    if (p.constOnly && !x.isConst) return false;
    if (p.where && !p.where(x, x.data)) return false;
    return bindValue(b, p.name, x);
  }
  const n = x.producer;
  if (!n || n.outputs[p.output] !== x) return false;
  return matchNode(p, n, b);
}

function copy(b: Bindings): Bindings {
  return { values: new Map(b.values), nodes: new Map(b.nodes) };
}

function matchNode(p: OpPattern, n: Node, b: Bindings): boolean {
  if (p.ops && !p.ops.has(n.op)) return false;
  if (p.name !== undefined) {
    const had = b.nodes.get(p.name);
    if (had && had !== n) return false;
    b.nodes.set(p.name, n);
  }
  if (p.inputs) {
    if (p.inputs.length !== n.inputs.length) return false;
    if (p.commutative && p.inputs.length === 2) {
      const trial = copy(b);
      if (matchValue(p.inputs[0]!, n.inputs[0]!, trial) && matchValue(p.inputs[1]!, n.inputs[1]!, trial)) {
        assign(b, trial);
      } else if (!(matchValue(p.inputs[0]!, n.inputs[1]!, b) && matchValue(p.inputs[1]!, n.inputs[0]!, b))) {
        return false;
      }
    } else {
      for (let i = 0; i < p.inputs.length; i++) if (!matchValue(p.inputs[i]!, n.inputs[i]!, b)) return false;
    }
  }
  return !p.attrs || p.attrs(n.attrs, n);
}

function assign(b: Bindings, from: Bindings): void {
  b.values.clear();
  b.nodes.clear();
  for (const [k, x] of from.values) b.values.set(k, x);
  for (const [k, x] of from.nodes) b.nodes.set(k, x);
}

/** Match `p` rooted at node `n` (the pattern's output index picks which result of the node it stands for). */
export function matchAt(p: OpPattern, n: Node): Match | undefined {
  const b: Bindings = { values: new Map(), nodes: new Map() };
  return matchNode(p, n, b) ? new Match(n, b.values, b.nodes) : undefined;
}

// ---- rules -------------------------------------------------------------------------------------------------------

/**
 * What a rule returns: the values that replace the root's outputs (one per output, or one Value for a single output),
 * or undefined when the rule declines after all.
 */
export type Replacement = Value | readonly Value[] | undefined;

export interface Rule {
  readonly name: string;
  readonly pattern: OpPattern;
  /**
   * The replacement for the matched node's outputs (one value per output), or undefined to leave it. A KilnError other
   * than code `runtime` thrown here (e.g. inference rejecting a new node) also means "does not apply".
   */
  rewrite(m: Match, rw: Rewriter): Replacement;
}

/** A rewrite rule named `name`: where `pattern` matches a node, `rewrite` gives its replacement (see {@link Rule}). */
export function rule(name: string, pattern: OpPattern, rewrite: (m: Match, rw: Rewriter) => Replacement): Rule {
  return { name, pattern, rewrite };
}

/** Builds replacement nodes and constants inside a rewrite; types come from the registry's inference. */
export interface Rewriter {
  readonly graph: Graph;
  /** A new node of `opName` on `inputs`, placed before the node being rewritten; throws when inference fails. */
  op(opName: string, inputs: readonly (Value | null)[], attrs?: Attrs, numOutputs?: number): Value[];
  /** A new constant. */
  constant(data: Tensor): Value;
  /** A new constant from plain numbers. */
  const(dtype: DType, values: readonly number[], shape?: readonly number[]): Value;
  /** Whether `x` is a graph output. */
  isOutput(x: Value): boolean;
}

/** Fresh value and node names against every name in the graph (the verifier wants both unique). */
export class Names {
  private readonly used = new Set<string>();
  private k = 0;
  /** Reserves every value and node name already in `g`. */
  constructor(g: Graph) {
    for (const x of g.values()) this.used.add(x.name);
    for (const n of g.nodes) this.used.add(n.name);
  }
  /** `hint`, or `hint_N` for the first N that is free; the name is reserved. */
  fresh(hint: string): string {
    let s = hint;
    while (this.used.has(s)) s = `${hint}_${++this.k}`;
    this.used.add(s);
    return s;
  }
}

export interface RewriteStats {
  /** How often each rule fired. */
  fired: Map<string, number>;
  /** Nodes tried (a rescanning driver would show O(N²) here). */
  visits: number;
}

/**
 * Replace the uses of `from` by `to`. A graph output keeps its name: the replacement takes it when it is a node
 * result no other output names; otherwise (an input, a constant, another output) the replacement is refused.
 */
export function replaceValue(g: Graph, from: Value, to: Value, outputs: Set<Value>): boolean {
  if (from === to) return true;
  if (typeToString(from.type) !== typeToString(to.type)) {
    throw new KilnError('verify', `rewrite replaces ${typeToString(from.type)} by ${typeToString(to.type)}`, {
      tensor: from.name,
    });
  }
  if (outputs.has(from)) {
    if (!to.producer || outputs.has(to)) return false;
    to.name = from.name;
    outputs.delete(from);
    outputs.add(to);
  }
  g.replaceAllUses(from, to);
  return true;
}

/**
 * Whether a root's replacement is allowed before anything is touched: same type (a replacement with another type,
 * e.g. a reshape whose inferred dims lost their names, is declined), and an output's name can be kept.
 */
function canReplace(from: Value, to: Value, outputs: Set<Value>): boolean {
  if (from === to) return true;
  if (typeToString(from.type) !== typeToString(to.type)) return false;
  return !outputs.has(from) || (to.producer !== undefined && !outputs.has(to));
}

/**
 * Apply `rules` to a fixed point. New nodes are placed just before the node they replace; dead nodes are dropped
 * and the order restored (stable topological sort) once at the end.
 */
export function applyRules(g: Graph, rules: readonly Rule[], maxRewrites = 1_000_000): RewriteStats {
  const byOp = new Map<string, Rule[]>();
  const anyOp: Rule[] = [];
  for (const r of rules) {
    if (!r.pattern.ops) anyOp.push(r);
    else for (const o of r.pattern.ops) byOp.set(o, [...(byOp.get(o) ?? []), r]);
  }
  const rulesFor = (opName: string): readonly Rule[] => {
    const own = byOp.get(opName);
    return own ? (anyOp.length ? [...own, ...anyOp] : own) : anyOp;
  };

  const names = new Names(g);
  const outputs = new Set(g.outputs);
  const order = [...g.nodes];
  const before = new Map<Node, Node[]>(); // new nodes to place before an existing one
  const dead = new Set<Node>();
  const stats: RewriteStats = { fired: new Map(), visits: 0 };

  // LIFO worklist with membership flags: pushing users and producers after a rewrite revisits only the neighbourhood
  const work: Node[] = [...order].reverse();
  const queued = new Set<Node>(work);
  const push = (n: Node | undefined) => {
    if (n && !dead.has(n) && !queued.has(n)) {
      queued.add(n);
      work.push(n);
    }
  };

  let anchor: Node | undefined;
  const created: Node[] = [];
  const rw: Rewriter = {
    graph: g,
    op(opName, inputs, attrs = {}, numOutputs = 1) {
      const nodeName = names.fresh(opName);
      const inf = inferOp(
        opName,
        nodeName,
        inputs.map((x) => x?.type),
        attrs,
        numOutputs,
        (i) => inputs[i]?.data,
        (i) => inputs[i]?.symbolic,
      );
      const outs = inf.types.map((t, i) => {
        const o = new Value(names.fresh(`${opName}_out`), t);
        o.symbolic = inf.symbolic[i];
        return o;
      });
      const n = new Node(nodeName, opName, inputs, outs, { ...attrs });
      created.push(n);
      return outs;
    },
    constant(data) {
      const c = new Value(
        names.fresh('c'),
        { dtype: data.dtype, shape: [...data.shape], layout: { kind: 'dense' } },
        data,
      );
      g.constants.push(c);
      return c;
    },
    const(dtype, values, shape = [values.length]) {
      return this.constant(makeTensor(dtype, shape, values));
    },
    isOutput: (x) => outputs.has(x),
  };

  // Drop a node whose results nobody reads, then its producers in turn.
  const sweep = (n: Node) => {
    const stack = [n];
    while (stack.length) {
      const d = stack.pop()!;
      if (dead.has(d) || d.outputs.some((o) => outputs.has(o) || g.users(o).length > 0)) continue;
      dead.add(d);
      const ins = d.inputs;
      d.inputs = ins.map(() => null); // leaves the use index now; the node list is rebuilt at the end
      for (const x of ins) if (x?.producer) stack.push(x.producer);
    }
  };

  let rewrites = 0;
  const constsBefore = g.constants.length;
  while (work.length) {
    const n = work.pop()!;
    queued.delete(n);
    if (dead.has(n)) continue;
    stats.visits++;
    for (const r of rulesFor(n.op)) {
      const m = matchAt(r.pattern, n);
      if (!m) continue;
      anchor = n;
      created.length = 0;
      let repl: Replacement;
      try {
        repl = r.rewrite(m, rw);
      } catch (e) {
        // a replacement that does not type-check is a rule that does not apply here
        if (e instanceof KilnError && e.code !== 'runtime') repl = undefined;
        else throw e;
      }
      const vals = repl === undefined ? undefined : repl instanceof Value ? [repl] : repl;
      if (!vals || vals.length !== n.outputs.length || !n.outputs.every((o, i) => canReplace(o, vals[i]!, outputs))) {
        continue; // new nodes that were built stay out of the graph; unused constants are dropped at the end
      }
      if (n.outputs.every((o, i) => o === vals[i])) continue;
      for (const c of created) {
        g.nodes.push(c); // indexes its uses
        const list = before.get(anchor);
        if (list) list.push(c);
        else before.set(anchor, [c]);
      }
      const touched = new Set<Node>();
      n.outputs.forEach((o, i) => {
        for (const u of g.users(o)) touched.add(u);
        replaceValue(g, o, vals[i]!, outputs);
      });
      stats.fired.set(r.name, (stats.fired.get(r.name) ?? 0) + 1);
      const producers = n.inputs.map((x) => x?.producer);
      sweep(n);
      for (const p of producers) if (p && !dead.has(p)) sweep(p);
      for (const c of created) push(c);
      for (const u of touched) push(u);
      for (const x of vals) for (const u of g.users(x)) push(u);
      for (const p of producers) push(p);
      if (++rewrites > maxRewrites)
        throw new KilnError('limit', `rewrite did not reach a fixed point`, { limit: 'rewrites' });
      break;
    }
  }
  if (rewrites > 0) finish(g, order, before, dead);
  else if (g.constants.length !== constsBefore) g.constants = g.constants.slice(0, constsBefore); // declined folds
  return stats;
}

/** Rebuild the node list: new nodes before their anchors, dead ones gone, unread constants dropped. */
function finish(g: Graph, order: readonly Node[], before: Map<Node, Node[]>, dead: Set<Node>): void {
  const out: Node[] = [];
  const emit = (n: Node) => {
    for (const c of before.get(n) ?? []) emit(c);
    if (!dead.has(n)) out.push(n);
  };
  for (const n of order) emit(n);
  g.nodes = out;
  g.constants = g.constants.filter((c) => g.outputs.includes(c) || g.users(c).length > 0);
  g.toposort(); // stable: a no-op when the anchors already give a topological order
}
