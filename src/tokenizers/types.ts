/** What every tokenizer offers (llama2.c / sentencepiece BPE, GPT-2 byte-level BPE, …). */
export interface Tokenizer {
  readonly vocabSize: number;
  /** Beginning / end of sequence ids (undefined when the vocabulary has none). */
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  /**
   * Token ids of `text`; `bos` prepends the BOS id.
   *
   * @throws KilnError (code `runtime`) when a byte of the text has no token (no byte piece and no unknown id).
   */
  encode(text: string, opts?: { bos?: boolean }): number[];
  /**
   * The text of a sequence of ids (byte-fallback pieces joined into UTF-8).
   *
   * @throws KilnError (code `runtime`) for an id outside [0, vocabSize) (also from the stream decoder's `push`).
   */
  decode(ids: readonly number[]): string;
  /**
   * Streaming: a decoder that takes one id at a time and returns the text that is now complete (bytes of a multi-byte
   * character are held until the character is whole; a leading space after BOS is dropped as sentencepiece does).
   */
  streamDecoder(): {
    /** Adds one id; returns the text completed by it (possibly empty). */
    push(id: number): string;
    /** The text still held (an incomplete character's bytes as U+FFFD); resets the decoder. */
    flush(): string;
  };
}
