/**
 * Merged rotary embeddings: the queries and keys of one merged Q/K/V projection are rotated by the same cos / sin
 * caches and positions; as adjacent parts of the projection's split, they are rotated by ONE rotary_embedding over
 * both (their heads side by side, the same head size), whose result is split back into the two rotated values.
 * One kernel instead of two; the splits are views on the devices.
 *
 * Conditions: 3-D rotary_embedding nodes ([batch, seq, heads·size]) reading outputs i and i + 1 of one split along
 * the last axis, nothing else reading those outputs, the same cos / sin / position_ids values, the same
 * `interleaved`, a full rotation (`rotary_embedding_dim` 0) and the same head size.
 */
import { Graph, Node, Value } from '../../ir/graph.js';
import { tensorType } from '../../ir/types.js';
import type { Pass } from '../context.js';
import { Names } from '../rewrite.js';

const headSize = (n: Node) => {
  const last = n.inputs[0]!.type.shape.at(-1);
  const h = n.attrs['num_heads'] as number | undefined;
  return typeof last === 'number' && h ? last / h : undefined;
};

function compatible(a: Node, b: Node): boolean {
  const same = (i: number) => a.inputs[i] === b.inputs[i];
  return (
    same(1) &&
    same(2) &&
    same(3) &&
    !!(a.attrs['interleaved'] ?? false) === !!(b.attrs['interleaved'] ?? false) &&
    !((a.attrs['rotary_embedding_dim'] as number | undefined) ?? 0) &&
    !((b.attrs['rotary_embedding_dim'] as number | undefined) ?? 0) &&
    headSize(a) !== undefined &&
    headSize(a) === headSize(b)
  );
}

/** The only reader of `v`, when it is a 3-D rotary_embedding. */
function rotaryOf(g: Graph, v: Value): Node | undefined {
  const users = g.users(v);
  if (users.length !== 1 || g.outputs.includes(v)) return undefined;
  const r = users[0]!;
  return r.op === 'rotary_embedding' && r.inputs[0] === v && v.type.shape.length === 3 ? r : undefined;
}

/** Merge in place; returns the number of merged pairs. */
export function mergeRotary(graph: Graph): number {
  const names = new Names(graph);
  let merged = 0;
  for (const split of [...graph.nodes]) {
    if (split.op !== 'split' || !graph.nodes.includes(split)) continue;
    const x = split.inputs[0]!;
    const rank = x.type.shape.length;
    const axis = (split.attrs['axis'] as number | undefined) ?? 0;
    const sizes = split.attrs['split'] as number[] | undefined;
    if (rank !== 3 || (axis !== -1 && axis !== 2) || !sizes || split.inputs.length > 1) continue;
    for (let i = 0; i + 1 < split.outputs.length; i++) {
      const [a, b] = [rotaryOf(graph, split.outputs[i]!), rotaryOf(graph, split.outputs[i + 1]!)];
      if (!a || !b || !compatible(a, b)) continue;
      const size = headSize(a)!;
      const width = sizes[i]! + sizes[i + 1]!;
      const [B, S] = x.type.shape;
      const type = tensorType(x.type.dtype, [B!, S!, width]);
      // the split keeps its other parts and gives the pair as one part
      const parts = split.outputs.slice();
      const pair = new Value(names.fresh(`${parts[i]!.name}_${parts[i + 1]!.name}`), type);
      const newSizes = [...sizes.slice(0, i), width, ...sizes.slice(i + 2)];
      const newSplit = new Node(
        names.fresh(split.name),
        'split',
        [x],
        [...parts.slice(0, i), pair, ...parts.slice(i + 2)],
        { ...split.attrs, split: newSizes },
      );
      const rotated = new Value(names.fresh(`${pair.name}_rotated`), type);
      const rot = new Node(
        names.fresh(`${a.name}_merged`),
        'rotary_embedding',
        [pair, ...a.inputs.slice(1)],
        [rotated],
        {
          ...a.attrs,
          num_heads: width / size,
        },
      );
      const back = new Node(names.fresh(`${a.name}_split`), 'split', [rotated], [a.outputs[0]!, b.outputs[0]!], {
        axis: -1,
        split: [sizes[i]!, sizes[i + 1]!],
      });
      graph.addNode(newSplit, split);
      graph.addNode(rot, a);
      graph.addNode(back, a);
      for (const n of [split, a, b]) graph.removeNode(n);
      merged++;
      break; // this split is gone; its replacement is visited no more (one pair per projection)
    }
  }
  if (merged) graph.toposort();
  return merged;
}

/** The pass: level 1, after merge-projections (which makes the split it reads). */
export const mergeRotaryPass: Pass = {
  name: 'merge-rotary',
  minLevel: 1,
  run(graph) {
    return { changed: mergeRotary(graph) > 0 };
  },
};
