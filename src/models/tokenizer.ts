// An offline BERT-style tokenizer for the text conditioning of LDM (`BERTTokenizer` of
// ldm/modules/encoders/modules.py wraps Hugging Face `BertTokenizerFast("bert-base-uncased")`,
// which needs a download; this one is built from the training captions instead, or from any BERT
// `vocab.txt` when one is at hand, in which case it tokenizes as BertTokenizer does).
//  1. basic tokenization (BERT's BasicTokenizer / BertNormalizer + BertPreTokenizer): drop control
//     characters, whitespace -> ' ', spaces around CJK ideographs, lower-case and strip accents
//     (NFD, drop Mn) when do_lower_case, split on whitespace and on every punctuation character;
//  2. WordPiece: greedy longest-match-first with '##' continuation pieces; a word with no full
//     cover (or longer than 100 characters) becomes [UNK];
//  3. [CLS] tokens [SEP], truncated to max_length - 2 tokens, padded with [PAD] to max_length
//     (`padding="max_length", truncation=True` as the official call).
// Built vocabularies ("WordPiece-lite", `BERTTokenizer.build`): [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3,
// [MASK]=4, then (by default) every character seen and its '##' form, then the words of the
// captions by decreasing frequency (ties alphabetical). Unseen words thus split into known words /
// characters instead of [UNK]. Serialisable with toJSON / fromJSON (stored in the model config).
// What it is not: no Hugging Face tokenizer.json reading, no byte-level BPE (CLIP), no WordPiece
// training of merged sub-words.

import { ConfigError } from '../util/index.ts';
import { Tensor } from '../tensor/index.ts';

export const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;

/** The serialised form (the `vocab` / `do_lower_case` / `max_length` of BERTEmbedder's config). */
export interface BertTokenizerJSON {
  type: 'bert-wordpiece';
  vocab: string[];
  do_lower_case: boolean;
  max_length: number;
}

export interface BuildVocabOptions {
  /** keep words seen at least this often (default 1) */
  minFreq?: number;
  /** cap on the vocabulary size, specials and characters included (default: no cap) */
  maxVocab?: number;
  /** add every seen character and its '##' continuation (default true) */
  charFallback?: boolean;
  doLowerCase?: boolean;
  maxLength?: number;
}

const MAX_WORD_CHARS = 100;

function isControl(ch: string): boolean {
  if (ch === '\t' || ch === '\n' || ch === '\r') return false;
  return /\p{C}/u.test(ch);
}
function isWhitespace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || /\p{Zs}/u.test(ch);
}
/** BERT's _is_punctuation: ASCII 33-47, 58-64, 91-96, 123-126, or a Unicode P* category. */
function isPunctuation(ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) return true;
  return /\p{P}/u.test(ch);
}
function isCjk(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

/** Step 1: BERT's basic tokenization. */
export function basicTokenize(text: string, doLowerCase = true): string[] {
  let clean = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp === 0xfffd || isControl(ch)) continue;
    if (isWhitespace(ch)) clean += ' ';
    else if (isCjk(cp)) clean += ` ${ch} `;
    else clean += ch;
  }
  const out: string[] = [];
  for (let word of clean.trim().split(/ +/)) {
    if (word === '') continue;
    if (doLowerCase) word = word.toLowerCase().normalize('NFD').replace(/\p{Mn}/gu, '');
    let cur = '';
    for (const ch of word) {
      if (isPunctuation(ch)) {
        if (cur) out.push(cur);
        out.push(ch);
        cur = '';
      } else {
        cur += ch;
      }
    }
    if (cur) out.push(cur);
  }
  return out;
}

export class BERTTokenizer {
  readonly vocab: readonly string[];
  readonly doLowerCase: boolean;
  readonly maxLength: number;
  readonly padId: number;
  readonly unkId: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly #ids: ReadonlyMap<string, number>;

  constructor(vocab: readonly string[], opts: { doLowerCase?: boolean; maxLength?: number } = {}) {
    const ids = new Map<string, number>();
    vocab.forEach((t, i) => {
      if (typeof t !== 'string') throw new ConfigError(`BERTTokenizer: vocabulary entry ${i} is not a string`);
      if (!ids.has(t)) ids.set(t, i);
    });
    const need = (t: string): number => {
      const id = ids.get(t);
      if (id === undefined) throw new ConfigError(`BERTTokenizer: the vocabulary has no '${t}' token (needs ${SPECIAL_TOKENS.slice(0, 4).join(', ')})`);
      return id;
    };
    this.vocab = Object.freeze([...vocab]);
    this.#ids = ids;
    this.doLowerCase = opts.doLowerCase ?? true;
    this.maxLength = opts.maxLength ?? 77;
    if (!Number.isInteger(this.maxLength) || this.maxLength < 2) throw new ConfigError(`BERTTokenizer: max_length must be an integer >= 2, got ${this.maxLength}`);
    this.padId = need('[PAD]');
    this.unkId = need('[UNK]');
    this.clsId = need('[CLS]');
    this.sepId = need('[SEP]');
  }

  /** Build a vocabulary from training captions (see the file comment). */
  static build(texts: Iterable<string>, opts: BuildVocabOptions = {}): BERTTokenizer {
    const lower = opts.doLowerCase ?? true;
    const counts = new Map<string, number>();
    const chars = new Set<string>();
    for (const text of texts) {
      for (const w of basicTokenize(text, lower)) {
        counts.set(w, (counts.get(w) ?? 0) + 1);
        for (const ch of w) chars.add(ch);
      }
    }
    const vocab: string[] = [...SPECIAL_TOKENS];
    const seen = new Set<string>(vocab);
    const push = (t: string): void => {
      if (!seen.has(t)) {
        seen.add(t);
        vocab.push(t);
      }
    };
    if (opts.charFallback ?? true) {
      const cs = [...chars].sort();
      for (const c of cs) push(c);
      for (const c of cs) push(`##${c}`);
    }
    const minFreq = opts.minFreq ?? 1;
    const words = [...counts.entries()].filter(([, n]) => n >= minFreq)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [w] of words) push(w);
    const cap = opts.maxVocab ?? Infinity;
    if (vocab.length > cap) vocab.length = Math.max(SPECIAL_TOKENS.length, cap);
    return new BERTTokenizer(vocab, { doLowerCase: lower, maxLength: opts.maxLength ?? 77 });
  }

  /** A BERT `vocab.txt` (one token per line; the line number is the id). */
  static fromVocabText(text: string, opts: { doLowerCase?: boolean; maxLength?: number } = {}): BERTTokenizer {
    const lines = text.split(/\r?\n/);
    while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return new BERTTokenizer(lines, opts);
  }

  static fromJSON(j: BertTokenizerJSON | Record<string, unknown>): BERTTokenizer {
    const o = j as Record<string, unknown>;
    if (!Array.isArray(o['vocab'])) throw new ConfigError('BERTTokenizer.fromJSON: expected {vocab: string[], do_lower_case, max_length}');
    return new BERTTokenizer(o['vocab'] as string[], {
      doLowerCase: (o['do_lower_case'] as boolean | undefined) ?? true, maxLength: (o['max_length'] as number | undefined) ?? 77,
    });
  }

  toJSON(): BertTokenizerJSON {
    return { type: 'bert-wordpiece', vocab: [...this.vocab], do_lower_case: this.doLowerCase, max_length: this.maxLength };
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  tokenId(token: string): number | undefined {
    return this.#ids.get(token);
  }

  /** The words of the texts (basic tokens, in first-seen order) that are not tokens whole: split
   *  into pieces or [UNK], so never seen whole in training. */
  wordsNotWhole(texts: readonly string[]): string[] {
    const out = new Set<string>();
    for (const t of texts) for (const w of basicTokenize(t, this.doLowerCase)) if (this.tokenId(w) === undefined) out.add(w);
    return [...out];
  }

  /** Step 2: WordPiece of one basic token. */
  wordpiece(word: string): string[] {
    const chars = [...word];
    if (chars.length > MAX_WORD_CHARS) return ['[UNK]'];
    const out: string[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let piece: string | null = null;
      while (start < end) {
        const sub = (start > 0 ? '##' : '') + chars.slice(start, end).join('');
        if (this.#ids.has(sub)) {
          piece = sub;
          break;
        }
        end--;
      }
      if (piece === null) return ['[UNK]'];
      out.push(piece);
      start = end;
    }
    return out;
  }

  /** The words of a text the vocabulary cannot spell (each becomes [UNK]): worth a warning. */
  unknownWords(text: string): string[] {
    return basicTokenize(text, this.doLowerCase).filter((w) => this.wordpiece(w).includes('[UNK]'));
  }

  /** Steps 1-2: the token strings of a text (no specials). */
  tokenize(text: string): string[] {
    return basicTokenize(text, this.doLowerCase).flatMap((w) => this.wordpiece(w));
  }

  /** Step 3 without padding: [CLS] ids [SEP], truncated to max_length. */
  encode(text: string): number[] {
    const ids = this.tokenize(text).map((t) => this.#ids.get(t) ?? this.unkId).slice(0, this.maxLength - 2);
    return [this.clsId, ...ids, this.sepId];
  }

  /** `BERTTokenizer.forward(text)`: int64 input_ids [B, max_length], padded with [PAD]. */
  call(texts: readonly string[]): Tensor {
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) {
      throw new ConfigError('BERTTokenizer: expected a list of strings (one caption per batch row)');
    }
    const L = this.maxLength;
    const data = new Float64Array(texts.length * L).fill(this.padId);
    texts.forEach((t, b) => this.encode(t).forEach((id, i) => { data[b * L + i] = id; }));
    return new Tensor(data, [texts.length, L], 'int64');
  }

  /** ids -> text: specials dropped, '##' pieces joined to the previous token. */
  decode(ids: readonly number[] | Tensor): string {
    const list = ids instanceof Tensor ? Array.from(ids.data) : ids;
    const specials = new Set([this.padId, this.clsId, this.sepId]);
    let s = '';
    for (const id of list) {
      if (specials.has(id)) continue;
      const t = this.vocab[id] ?? '[UNK]';
      if (t.startsWith('##')) s += t.slice(2);
      else s += (s ? ' ' : '') + t;
    }
    return s;
  }
}
