/**
 * GPT-2 byte-level BPE: text is split by GPT-2's pre-tokenizer pattern, each piece's UTF-8 bytes are written as the
 * printable characters of GPT-2's byte↔unicode table, then pairs are merged by rank (earliest merge first, ties
 * leftmost) using the same heap merge as sentencepiece BPE. Decoding maps the characters back to bytes.
 */
import { KilnError, ParseError } from '../../ir/errors.js';
import { bpeMerge } from './sentencepiece.js';
import type { Tokenizer } from './types.js';

/** GPT-2's table: printable Latin-1 bytes stand for themselves, the others map to U+0100 upward. */
function byteTable(): { toChar: string[]; toByte: Map<string, number> } {
  const toChar: string[] = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    toChar[b] = String.fromCodePoint(printable ? b : 256 + extra++);
  }
  return { toChar, toByte: new Map(toChar.map((c, b) => [c, b])) };
}

const PRETOKENIZE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export interface ByteLevelBpeSpec {
  readonly tokens: readonly string[];
  /** "left right" pairs, best (earliest) first. */
  readonly merges: readonly string[];
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  /** Ids that decode to nothing (special tokens). */
  readonly control?: ReadonlySet<number>;
}

export function byteLevelBpeTokenizer(spec: ByteLevelBpeSpec): Tokenizer {
  const { toChar, toByte } = byteTable();
  const ids = new Map<string, number>();
  spec.tokens.forEach((t, i) => {
    if (!ids.has(t)) ids.set(t, i);
  });
  const rank = new Map<string, number>();
  spec.merges.forEach((m, i) => {
    const sp = m.indexOf(' ');
    if (sp <= 0 || sp === m.length - 1) throw new ParseError(`BPE merge ${i} '${m}' is not "left right"`);
    if (!rank.has(m)) rank.set(m, i);
  });
  const enc = new TextEncoder();
  // bytes of every token, for decoding
  const output = spec.tokens.map((t, id) => {
    if (spec.control?.has(id)) return new Uint8Array(0);
    const out: number[] = [];
    for (const ch of t) {
      const b = toByte.get(ch);
      if (b === undefined) out.push(...enc.encode(ch));
      else out.push(b);
    }
    return Uint8Array.from(out);
  });
  const cache = new Map<string, number[]>();
  const encodeWord = (word: string): number[] => {
    const hit = cache.get(word);
    if (hit) return hit;
    const syms: (string | null)[] = [];
    const symIds: number[] = [];
    for (const b of enc.encode(word)) {
      const c = toChar[b]!;
      const id = ids.get(c);
      if (id === undefined) throw new KilnError('runtime', `the vocabulary has no token for byte 0x${b.toString(16)}`);
      syms.push(c);
      symIds.push(id);
    }
    const merged = bpeMerge(symIds, syms, (a, b) => {
      const r = rank.get(a + ' ' + b);
      if (r === undefined) return undefined;
      const id = ids.get(a + b);
      return id === undefined ? undefined : { id, score: -r };
    });
    if (cache.size < 50_000) cache.set(word, merged);
    return merged;
  };
  const check = (id: number) => {
    if (!Number.isInteger(id) || id < 0 || id >= output.length) {
      throw new KilnError('runtime', `token id ${id} is outside the vocabulary [0, ${output.length})`, {
        limit: 'vocabSize',
      });
    }
    return output[id]!;
  };
  const streamDecoder = () => {
    let utf8 = new TextDecoder('utf-8');
    return {
      push: (id: number) => utf8.decode(check(id), { stream: true }),
      flush: () => {
        const rest = utf8.decode();
        utf8 = new TextDecoder('utf-8');
        return rest;
      },
    };
  };
  return {
    vocabSize: spec.tokens.length,
    bos: spec.bos,
    eos: spec.eos,
    encode(text, opts) {
      const out: number[] = [];
      if (opts?.bos && spec.bos !== undefined) out.push(spec.bos);
      for (const m of text.matchAll(PRETOKENIZE)) for (const id of encodeWord(m[0])) out.push(id);
      return out;
    },
    decode(idList) {
      const d = streamDecoder();
      let s = '';
      for (const id of idList) s += d.push(id);
      return s + d.flush();
    },
    streamDecoder,
  };
}
