/**
 * Token trees for speculative decoding (SpecInfer, Miao et al. 2024; Medusa's candidate trees, Cai et al. 2024): the
 * drafts of several sources are merged into one tree rooted at the current token (a trie: proposals sharing a prefix
 * share its nodes), the target checks every node in one pass (each node attends to the prefix and its ancestors:
 * `paged_attention`'s `tree_mask`, positions = prefix + depth), and the accepted path is the longest root path the
 * target agrees with:
 * - greedy: from the root, follow the child whose token is the target's argmax at the node; the argmax where no child
 *   has it is the next token (the bonus token at a leaf);
 * - sampling (SpecInfer's multi-step speculative sampling): at a node with target distribution p, its children are
 *   tried in turn, child c (drafted from q_c; one-hot for deterministic drafts) accepted with probability
 *   min(1, p(c) / q_c(c)); after each rejection p ← normalize(max(0, p − q_c)); when every child is rejected the next
 *   token is drawn from the residual p, at a leaf from p itself (the bonus token). The output is distributed as the
 *   target's samples when each stochastic child was drawn from its q independently of its siblings — so proposals
 *   with distributions (sampled drafts) are never merged with others: they get a branch of their own.
 */
import { KilnError } from '../../ir/errors.js';
import { TREE_MAX_NODES } from '../../ir/ops/paged.js';

export { TREE_MAX_NODES };

/** A token tree: node 0 is the root (the current token, already chosen); parents come before their children. */
export class TokenTree {
  readonly tokens: number[];
  /** Parent of each node (−1 for the root). */
  readonly parents: number[];
  /** Depth of each node (0 for the root). */
  readonly depths: number[];
  /** q of each node's token, when it was sampled from a distribution (undefined: chosen deterministically). */
  readonly probs: (Float64Array | undefined)[];
  /** Which source proposed each node first (index into the merge's list; −1 for the root). */
  readonly sources: number[];
  /** Most nodes the tree may hold (root included). */
  readonly maxNodes: number;

  /**
   * A tree holding only the root `token`; at most `maxNodes` nodes (default and limit {@link TREE_MAX_NODES}).
   *
   * @throws KilnError (code `limit`, limit `tree nodes`) when maxNodes is not an integer in 1…32.
   */
  constructor(token: number, maxNodes = TREE_MAX_NODES) {
    if (!(Number.isInteger(maxNodes) && maxNodes >= 1 && maxNodes <= TREE_MAX_NODES)) {
      throw new KilnError('limit', `a token tree holds 1…${TREE_MAX_NODES} nodes, asked for ${maxNodes}`, {
        limit: 'tree nodes',
      });
    }
    this.maxNodes = maxNodes;
    this.tokens = [token];
    this.parents = [-1];
    this.depths = [0];
    this.probs = [undefined];
    this.sources = [-1];
  }

  /**
   * A tree from explicit arrays (node 0 the root, each parent before its child).
   *
   * @throws KilnError (code `limit`, limit `tree nodes`) past 32 nodes; (code `runtime`) for a bad parent list.
   */
  static from(tokens: readonly number[], parents: readonly number[]): TokenTree {
    if (tokens.length > TREE_MAX_NODES) {
      throw new KilnError('limit', `a token tree holds at most ${TREE_MAX_NODES} nodes, got ${tokens.length}`, {
        limit: 'tree nodes',
      });
    }
    if (!tokens.length || tokens.length !== parents.length || parents[0] !== -1) {
      throw new KilnError('runtime', 'a token tree needs one parent per token and node 0 as its root (parent −1)');
    }
    const t = new TokenTree(tokens[0]!);
    for (let i = 1; i < tokens.length; i++) {
      const p = parents[i]!;
      if (!(Number.isInteger(p) && p >= 0 && p < i)) {
        throw new KilnError('runtime', `node ${i}'s parent ${p} is not an earlier node`);
      }
      t.push(p, tokens[i]!, undefined, 0);
    }
    return t;
  }

  /** Nodes in the tree, root included. */
  get size(): number {
    return this.tokens.length;
  }

  /** The children of node `u`, in the order they were added (the order sampling tries them). */
  children(u: number): number[] {
    const out: number[] = [];
    for (let i = u + 1; i < this.size; i++) if (this.parents[i] === u) out.push(i);
    return out;
  }

  /** The deterministic child of `u` with `token`, if any. */
  private findChild(u: number, token: number): number | undefined {
    for (let i = u + 1; i < this.size; i++) {
      if (this.parents[i] === u && this.tokens[i] === token && !this.probs[i]) return i;
    }
    return undefined;
  }

  /**
   * Add a node under `parent` without merging (q: the distribution its token was drawn from, if any).
   *
   * @throws KilnError (code `limit`, limit `tree nodes`) when the tree is full; (code `runtime`) for a parent that
   * is not a node.
   */
  addChild(parent: number, token: number, q?: Float64Array, source = 0): number {
    if (this.size >= this.maxNodes) {
      throw new KilnError('limit', `the token tree is full (${this.maxNodes} nodes)`, { limit: 'tree nodes' });
    }
    if (!(Number.isInteger(parent) && parent >= 0 && parent < this.size)) {
      throw new KilnError('runtime', `parent ${parent} is not a node of a ${this.size}-node tree`);
    }
    return this.push(parent, token, q, source);
  }

  private push(parent: number, token: number, q: Float64Array | undefined, source: number): number {
    this.tokens.push(token);
    this.parents.push(parent);
    this.depths.push(this.depths[parent]! + 1);
    this.probs.push(q);
    this.sources.push(source);
    return this.size - 1;
  }

  /**
   * Merge a chain of draft tokens under node `at` (default the root): a deterministic chain follows the existing
   * nodes with the same tokens (trie merge) and adds the rest; a chain with distributions (`probs`) gets a branch of
   * its own. Stops when the tree is full. Returns the nodes of the chain (as far as it got).
   */
  addChain(tokens: readonly number[], probs?: readonly Float64Array[], at = 0, source = 0): number[] {
    const nodes: number[] = [];
    let u = at;
    for (const [i, tok] of tokens.entries()) {
      const q = probs?.[i];
      const existing = q ? undefined : this.findChild(u, tok);
      if (existing !== undefined) u = existing;
      else if (this.size < this.maxNodes) u = this.push(u, tok, q, source);
      else break;
      nodes.push(u);
    }
    return nodes;
  }

  /**
   * Merge another tree (its root standing for node `at` of this one; deterministic nodes merged as a trie). Stops
   * at this tree's capacity (nodes whose parent did not fit are dropped).
   */
  addTree(other: TokenTree, at = 0, source = 0): void {
    const map = new Map<number, number>([[0, at]]);
    for (let i = 1; i < other.size; i++) {
      const p = map.get(other.parents[i]!);
      if (p === undefined) continue;
      const q = other.probs[i];
      const existing = q ? undefined : this.findChild(p, other.tokens[i]!);
      if (existing !== undefined) map.set(i, existing);
      else if (this.size < this.maxNodes) map.set(i, this.push(p, other.tokens[i]!, q, source));
    }
  }

  /** Each node's ancestor-or-self bits (bit i: node i), the `tree_mask` words of a verification run. */
  masks(): number[] {
    const m: number[] = [];
    for (let i = 0; i < this.size; i++) {
      const p = this.parents[i]!;
      m.push((p < 0 ? 0 : m[p]!) | (1 << i) | 0);
    }
    return m;
  }

  /** The nodes from the root's child down to `u` (empty for the root). */
  pathTo(u: number): number[] {
    const out: number[] = [];
    for (let x = u; x > 0; x = this.parents[x]!) out.unshift(x);
    return out;
  }

  /** Whether the tree is one chain (each node at most one child). */
  isChain(): boolean {
    return this.parents.every((p, i) => p === i - 1);
  }
}

/** An accepted path: the nodes kept below the root (in order) and the target's token after them. */
export interface TreeVerdict {
  path: number[];
  next: number;
}

/**
 * Greedy tree acceptance: from the root, follow the child holding the target's argmax at each node
 * (`argmaxOf(node)`), as far as it goes; `next` is the argmax at the last node of the path.
 */
export function greedyAccept(tree: TokenTree, argmaxOf: (node: number) => number): TreeVerdict {
  const path: number[] = [];
  let u = 0;
  for (;;) {
    const a = argmaxOf(u);
    const c = tree.children(u).find((x) => tree.tokens[x] === a);
    if (c === undefined) return { path, next: a };
    path.push(c);
    u = c;
  }
}

/** A draw from a distribution whose entries sum to `total`. */
export function drawFrom(p: ArrayLike<number>, rand: () => number, total = 1): number {
  let r = rand() * total;
  let last = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i]! > 0) {
      last = i;
      r -= p[i]!;
      if (r < 0) return i;
    }
  }
  return last;
}

/**
 * SpecInfer's multi-step speculative sampling over a tree: `distOf(node)` is the target's (processed) distribution
 * after the node. At each node its children are tried in order with min(1, p(c) / q_c(c)) (q one-hot for a
 * deterministic node), the residual normalize(max(0, p − q_c)) replacing p after each rejection; the next token is
 * drawn from the residual when all children are rejected, from p at a leaf.
 */
export function sampleAccept(tree: TokenTree, distOf: (node: number) => Float64Array, rand: () => number): TreeVerdict {
  const path: number[] = [];
  let u = 0;
  for (;;) {
    let p = distOf(u);
    let total = 1;
    let taken: number | undefined;
    for (const c of tree.children(u)) {
      const tok = tree.tokens[c]!;
      const q = tree.probs[c];
      const qc = q ? q[tok]! : 1;
      if (qc > 0 && rand() < Math.min(1, p[tok]! / total / qc)) {
        taken = c;
        break;
      }
      // rejected: p ← max(0, p − q) (kept unnormalized: `total` is its mass)
      const r = new Float64Array(p.length);
      let sum = 0;
      for (let v = 0; v < p.length; v++) {
        const x = Math.max(0, p[v]! / total - (q ? q[v]! : v === tok ? 1 : 0));
        r[v] = x;
        sum += x;
      }
      if (sum > 0) {
        p = r;
        total = sum;
      }
    }
    if (taken === undefined) return { path, next: drawFrom(p, rand, total) };
    path.push(taken);
    u = taken;
  }
}
