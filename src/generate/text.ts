/** Text in, text out: generation and perplexity over a tokenizer. */
import { KilnError } from '../../ir/errors.js';
import type { Tokenizer } from '../tokenizers/types.js';
import type { GenerateOptions, LanguageModelSession } from './lm.js';

/**
 * Stream the text generated after `prompt` (BOS first when the tokenizer has one; stops at EOS or `opts.stop`).
 * Options as {@link LanguageModelSession.generate} (at most 128 tokens by default, greedy unless a temperature is set).
 *
 * @throws KilnError as {@link LanguageModelSession.generate} (e.g. code `runtime` for a prompt that encodes to no
 * tokens on a tokenizer without BOS).
 */
export async function* generateText(
  lm: LanguageModelSession,
  tok: Tokenizer,
  prompt: string,
  opts: GenerateOptions = {},
): AsyncGenerator<string> {
  const ids = tok.encode(prompt, { bos: tok.bos !== undefined });
  const stop = [...(opts.stop ?? []), ...(tok.eos !== undefined ? [tok.eos] : [])];
  // the decoder sees the prompt first (its output discarded), so the first new piece keeps its leading space
  const dec = tok.streamDecoder();
  for (const id of ids) dec.push(id);
  for await (const id of lm.generate(ids, { ...opts, stop })) {
    const piece = dec.push(id);
    if (piece) yield piece;
  }
  const tail = dec.flush();
  if (tail) yield tail;
}

export interface PerplexityResult {
  perplexity: number;
  /** Tokens scored (every token after a window's first). */
  tokens: number;
  windows: number;
  /** Mean negative log-likelihood in nats. */
  nll: number;
}

/**
 * Perplexity over non-overlapping windows of `window` tokens (BOS first, then window − 1 tokens of the text); within a
 * window every token after the first is scored from its prefix. Log-softmax in float64 on the host. Defaults:
 * `window` 256, every window of the text (`maxWindows` caps them).
 *
 * @throws KilnError (code `limit`, limit `window`) when `window` is not an integer ≥ 2.
 * @throws KilnError (code `limit`) when the model takes fewer tokens per run than `window`.
 */
export async function perplexity(
  lm: LanguageModelSession,
  tok: Tokenizer,
  text: string,
  opts: { window?: number; maxWindows?: number } = {},
): Promise<PerplexityResult> {
  const window = opts.window ?? 256;
  if (!(Number.isInteger(window) && window >= 2)) {
    throw new KilnError('limit', `window must be an integer ≥ 2, got ${window}`, { limit: 'window' });
  }
  const ids = tok.encode(text, { bos: false });
  const per = window - 1;
  let nll = 0;
  let count = 0;
  let windows = 0;
  for (let s = 0; s + 1 <= ids.length && windows < (opts.maxWindows ?? Infinity); s += per) {
    const chunk = [...(tok.bos !== undefined ? [tok.bos] : []), ...ids.slice(s, s + per)];
    if (chunk.length < 2) break;
    const logits = await lm.logits(chunk);
    const vocab = logits.shape[1]!;
    for (let t = 0; t + 1 < chunk.length; t++) {
      const row = logits.data.subarray(t * vocab, (t + 1) * vocab);
      let m = -Infinity;
      for (let v = 0; v < vocab; v++) m = Math.max(m, row[v]!);
      let z = 0;
      for (let v = 0; v < vocab; v++) z += Math.exp(row[v]! - m);
      nll -= row[chunk[t + 1]!]! - m - Math.log(z);
      count++;
    }
    windows++;
  }
  const mean = nll / Math.max(count, 1);
  return { perplexity: Math.exp(mean), tokens: count, windows, nll: mean };
}
