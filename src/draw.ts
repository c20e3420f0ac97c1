/**
 * Drawing graphs (browser-safe): Graphviz DOT of a graph — or of two side by side, as imported and as optimized —
 * and its SVG through Graphviz compiled to WebAssembly (@viz-js/viz, loaded on first use). `kiln inspect --dot/--svg`
 * and the browser demo draw with these.
 */
import type { Graph, Value } from '../ir/graph.js';

/**
 * The graph as Graphviz DOT: a box per node labelled with its op, an edge per value labelled with its shape; with
 * `before`, the two graphs side by side (clusters "as imported" and "optimized").
 */
export function graphDot(graph: Graph, before?: Graph): string {
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
  const q = (s: string) => `"${esc(s)}"`;
  const shape = (v: Value) => `${v.type.dtype}[${v.type.shape.join(',')}]`;
  /** One graph's nodes and edges; ids prefixed when two graphs share the drawing. */
  const body = (g: Graph, prefix: string, indent: string): string[] => {
    const id = (s: string) => q(prefix + s);
    const producer = new Map<Value, string>();
    const lines: string[] = [];
    for (const v of g.inputs) {
      producer.set(v, `in:${v.name}`);
      lines.push(`${indent}${id(`in:${v.name}`)} [shape=ellipse, label=${q(v.name)}];`);
    }
    for (const c of g.constants) {
      producer.set(c, `const:${c.name}`);
      lines.push(`${indent}${id(`const:${c.name}`)} [shape=note, label=${q(c.name)}];`);
    }
    for (const n of g.nodes) {
      lines.push(`${indent}${id(n.name)} [label="${esc(n.op)}\\n${esc(n.name)}"];`); // DOT's \n: a line break
      for (const o of n.outputs) producer.set(o, n.name);
      for (const x of n.inputs) {
        const from = x && producer.get(x);
        if (from) lines.push(`${indent}${id(from)} -> ${id(n.name)} [label=${q(shape(x))}];`);
      }
    }
    for (const o of g.outputs) {
      lines.push(`${indent}${id(`out:${o.name}`)} [shape=ellipse, label=${q(o.name)}];`);
      const from = producer.get(o);
      if (from) lines.push(`${indent}${id(from)} -> ${id(`out:${o.name}`)} [label=${q(shape(o))}];`);
    }
    return lines;
  };
  const lines = [`digraph ${q(graph.name)} {`, '  node [shape=box, fontname="monospace"];'];
  if (!before) lines.push(...body(graph, '', '  '));
  else {
    // side by side: the graph as imported and as optimized, node ids prefixed so the two never merge
    for (const [g, name, label] of [
      [before, 'before', 'as imported'],
      [graph, 'after', 'optimized'],
    ] as const) {
      lines.push(`  subgraph ${q(`cluster_${name}`)} {`, `    label=${q(`${label} (${g.nodes.length} nodes)`)};`);
      lines.push(...body(g, `${name}/`, '    '), '  }');
    }
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** The DOT text rendered to SVG by Graphviz (compiled to WebAssembly: @viz-js/viz). */
export async function dotToSvg(dot: string): Promise<string> {
  const { instance } = await import('@viz-js/viz');
  const viz = await instance();
  return viz.renderString(dot, { format: 'svg', engine: 'dot' });
}
