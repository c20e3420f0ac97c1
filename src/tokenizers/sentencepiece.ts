/**
 * Sentencepiece-style BPE by merge score, the algorithm of llama2.c's `encode` and llama.cpp's SPM tokenizer:
 * prefix a space, split the text into characters (a character that is not a piece becomes its UTF-8 bytes'
 * `<0xNN>` pieces), then repeatedly merge the adjacent pair whose concatenation is a piece with the highest score
 * (ties: leftmost pair). A naive loop rescans every pair after every merge, O(n²); here candidate pairs sit in a
 * binary heap keyed by (score, position) over a doubly linked list of symbols, O(n log n). Stale heap entries are
 * recognized by per-symbol version counters.
 *
 * Decoding concatenates the pieces' bytes and decodes UTF-8 (bytes of a character split across pieces are held until
 * complete); the one space the encoder prefixed is dropped from the start of the text and after each BOS.
 */
import { KilnError } from '../../ir/errors.js';
import type { Tokenizer } from './types.js';

export interface ScoreBpeSpec {
  /** Text each id matches in the (space-substituted) input; null for ids that never match (control, byte, unused). */
  readonly match: readonly (string | null)[];
  /** The bytes each id decodes to (empty for control tokens). */
  readonly output: readonly Uint8Array[];
  readonly scores: ArrayLike<number>;
  /** Id of the `<0xNN>` piece of each byte, -1 where the vocabulary has none. */
  readonly byteIds: Int32Array;
  /** How a space is written in pieces: ' ' (llama2.c) or '▁' (sentencepiece / GGUF). */
  readonly space: string;
  /** Prefix the text with one space before encoding (sentencepiece's add_dummy_prefix). */
  readonly addPrefix: boolean;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  /** Used for a byte without a `<0xNN>` piece; without it such text is a typed error. */
  readonly unk: number | undefined;
}

interface Candidate {
  score: number;
  left: number;
  right: number;
  verLeft: number;
  verRight: number;
  id: number;
}

/** Is candidate a merged before b: higher score, then leftmost. */
const before = (a: Candidate, b: Candidate): boolean => a.score > b.score || (a.score === b.score && a.left < b.left);

class CandidateHeap {
  private readonly h: Candidate[] = [];
  get size(): number {
    return this.h.length;
  }
  push(c: Candidate): void {
    const h = this.h;
    let i = h.push(c) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): Candidate {
    const h = this.h;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** UTF-8 bytes of one code point (lone surrogates as U+FFFD, as TextEncoder writes them). */
function utf8Of(cp: number): number[] {
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 63)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
}

/**
 * Merges adjacent symbols in place of a doubly linked list: always the pair with the highest score from `pair`
 * (ties: leftmost), until no adjacent pair merges. `strs[i]` null marks a symbol that never merges. O(n log n).
 */
export function bpeMerge(
  ids: number[],
  strs: (string | null)[],
  pair: (left: string, right: string) => { id: number; score: number } | undefined,
): number[] {
  const n = ids.length;
  const prev = new Int32Array(n);
  const next = new Int32Array(n);
  const ver = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  const heap = new CandidateHeap();
  const consider = (l: number, r: number): void => {
    if (l < 0 || r < 0) return;
    const a = strs[l];
    const b = strs[r];
    if (a == null || b == null) return;
    const m = pair(a, b);
    if (m === undefined) return;
    heap.push({ score: m.score, left: l, right: r, verLeft: ver[l]!, verRight: ver[r]!, id: m.id });
  };
  for (let i = 0; i + 1 < n; i++) consider(i, i + 1);
  while (heap.size > 0) {
    const c = heap.pop();
    const { left: l, right: r } = c;
    if (ver[l] !== c.verLeft || ver[r] !== c.verRight || next[l] !== r) continue; // stale
    ids[l] = c.id;
    strs[l] = strs[l]! + strs[r]!;
    ver[l]!++;
    ver[r]!++; // r is gone
    const after = next[r]!;
    next[l] = after;
    if (after >= 0) prev[after] = l;
    consider(prev[l]!, l);
    consider(l, after);
  }
  const out: number[] = [];
  if (n > 0) for (let i = 0; i >= 0; i = next[i]!) out.push(ids[i]!);
  return out;
}

export class ScoreBpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  private readonly lookup = new Map<string, number>();

  constructor(private readonly spec: ScoreBpeSpec) {
    this.vocabSize = spec.output.length;
    this.bos = spec.bos;
    this.eos = spec.eos;
    // the first id of a duplicated piece wins
    spec.match.forEach((m, id) => {
      if (m !== null && m !== '' && !this.lookup.has(m)) this.lookup.set(m, id);
    });
  }

  /** The vocabulary it was built from (for writers: GGUF's tokenizer.ggml.* metadata). */
  get vocabulary(): ScoreBpeSpec {
    return this.spec;
  }

  /** Id of a piece's text (spaces written as the vocabulary writes them), if it is a mergeable piece. */
  pieceId(text: string): number | undefined {
    return this.lookup.get(text);
  }

  encode(text: string, opts?: { bos?: boolean }): number[] {
    const out: number[] = [];
    if (opts?.bos && this.bos !== undefined) out.push(this.bos);
    if (text === '') return out;
    const { space, byteIds, unk, scores } = this.spec;
    let s = this.spec.addPrefix ? ' ' + text : text;
    if (space !== ' ') s = s.replaceAll(' ', space);

    // initial symbols: one per character, or one per byte for characters that are not pieces
    const ids: number[] = [];
    const strs: (string | null)[] = [];
    for (const ch of s) {
      const id = this.lookup.get(ch);
      if (id !== undefined) {
        ids.push(id);
        strs.push(ch);
        continue;
      }
      for (const b of utf8Of(ch.codePointAt(0)!)) {
        let bid = byteIds[b]!;
        if (bid < 0) {
          if (unk === undefined) {
            throw new KilnError('runtime', `cannot encode byte 0x${b.toString(16)}: no byte piece and no unknown id`);
          }
          bid = unk;
        }
        ids.push(bid);
        strs.push(null); // byte pieces never merge
      }
    }

    const { lookup } = this;
    const merged = bpeMerge(ids, strs, (a, b) => {
      const id = lookup.get(a + b);
      return id === undefined ? undefined : { id, score: scores[id]! };
    });
    for (const id of merged) out.push(id);
    return out;
  }

  private bytesOf(id: number): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new KilnError('runtime', `token id ${id} is outside the vocabulary [0, ${this.vocabSize})`, {
        limit: 'vocabSize',
      });
    }
    return this.spec.output[id]!;
  }

  decode(ids: readonly number[]): string {
    const d = this.streamDecoder();
    let s = '';
    for (const id of ids) s += d.push(id);
    return s + d.flush();
  }

  streamDecoder(): { push(id: number): string; flush(): string } {
    let utf8 = new TextDecoder('utf-8');
    let atStart = true; // the next emitted byte may be the encoder's prefix space
    return {
      push: (id) => {
        let bytes = this.bytesOf(id);
        if (atStart && bytes.length > 0) {
          if (this.spec.addPrefix && bytes[0] === 0x20) bytes = bytes.subarray(1);
          atStart = false;
        }
        if (id === this.bos) atStart = true;
        return utf8.decode(bytes, { stream: true });
      },
      flush: () => {
        const rest = utf8.decode();
        utf8 = new TextDecoder('utf-8');
        atStart = true;
        return rest;
      },
    };
  }
}

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/** The byte a `<0xNN>` piece stands for, or undefined. */
export function bytePieceValue(piece: string): number | undefined {
  const m = BYTE_PIECE.exec(piece);
  return m ? parseInt(m[1]!, 16) : undefined;
}
