/* bn_api_tokenize.h: the tokenizer hot path (bn_tok_*.c; overview in bn_tok_internal.h), called by
 * bitnet_kernels.tokenizer_engine (the C implementation of bitnet.tokenizers.engine).
 *
 * Same results as the Python reference (reference/bitnet/tokenizers/{pretokenizers,bpe,spm,
 * tiktoken_file}.py), which follows llama.cpp. Return codes: >= 0 a count; BN_TOK_E* below on failure (the Python caller
 * then runs the reference code, which raises the proper typed error). Handles are per
 * vocabulary, immutable after construction, and safe to share between threads.
 */
#ifndef BN_API_TOKENIZE_H
#define BN_API_TOKENIZE_H
#include <stdint.h>

/* error codes (negative returns) */
#define BN_TOK_EARG -1     /* bad argument (unknown splitter kind, no unicode table, ...) */
#define BN_TOK_EUTF8 -2    /* a code point past U+10FFFF: re-encoding it is impossible */
#define BN_TOK_ENOMEM -3   /* out of memory */
#define BN_TOK_ENOBYTE -4  /* SPM byte fallback needs a byte the vocabulary has no token for */
#define BN_TOK_ESPACE -5   /* output capacity too small */

/* pre-tokenizer splitter kinds (llama.cpp's custom splitters and one std::regex case) */
#define BN_SPLIT_GPT2 1     /* unicode_regex_split_custom_gpt2 */
#define BN_SPLIT_LLAMA3 2   /* unicode_regex_split_custom_llama3 */
#define BN_SPLIT_QWEN2 3    /* ... _qwen2 (one digit per piece) */
#define BN_SPLIT_QWEN35 4   /* ... _qwen35 (marks join letter runs) */
#define BN_SPLIT_NEWLINES 5 /* [^\n]+|[\n]+ */
#define BN_SPLIT_DIGIT 6    /* \p{N} on llama.cpp's collapsed text: each number code point */

/* llama.cpp's code point flags for U+0000..U+10FFFF (n = 0x110000 entries), copied once */
int bn_tok_set_unicode(const uint16_t *flags, int64_t n);

/* Pre-tokenize: lenient UTF-8 decoding (llama.cpp's), the splitters `kinds` in turn, then the
 * pieces re-encoded. out_raw (capacity 3 * len bytes) gets the re-encoded text; word_ends[i]
 * (capacity len + 1) the end offset of word i in it. If out_enc is not NULL (capacity
 * 6 * len bytes) it gets the GPT-2 byte-level encoding of out_raw as UTF-8 (one character per
 * raw byte) and *enc_len its length. Returns the number of words. */
int64_t bn_tok_split(const int32_t *kinds, int32_t n_kinds, const uint8_t *text, int64_t len,
                     uint8_t *out_raw, int64_t *word_ends, uint8_t *out_enc, int64_t *enc_len);

/* offs[0..n] of n strings end to end in blob (UTF-8, surrogates allowed), from their lengths in
 * code points; -1 if the blob does not hold exactly that many code points */
int bn_tok_utf8_offsets(const uint8_t *blob, int64_t n_bytes, const int64_t *n_cpts, int64_t n,
                        int64_t *offs);

/* Byte-level BPE (llm_tokenizer_bpe_session). Strings (UTF-8), string i at blob[offs[i]..offs[i+1]):
 * first the n_tok token texts, with token ids tok_ids[i] (-1: skip it), then for each of the
 * n_merges merges k its left text (string n_tok + 2k) and right text (n_tok + 2k + 1), with
 * rank merge_ranks[k] (-1: skip it). byte_encode: the strings are GPT-2 byte-level text, decoded
 * back to raw bytes here (a string with any other character can never match and is dropped);
 * else raw bytes. fallback[256]: for a final symbol missing from the vocabulary, the token of
 * each byte of its text (of its byte-level UTF-8 when byte_encode), -1: dropped.
 * flags: 1 ignore_merges, 2 whole_newline_words. NULL when out of memory. */
typedef struct bn_bpe bn_bpe;
bn_bpe *bn_bpe_new(int64_t n_tok, int64_t n_merges, const uint8_t *blob, const int64_t *offs,
                   const int32_t *tok_ids, const int32_t *merge_ranks, int32_t byte_encode,
                   const int32_t *fallback, int32_t flags);
void bn_bpe_free(bn_bpe *h);
/* ids of one pre-tokenized word (raw bytes); out capacity >= 2 * len. Returns the id count. */
int64_t bn_bpe_encode_word(const bn_bpe *h, const uint8_t *word, int64_t len, int32_t *out);
/* pre-tokenize with `kinds` (as bn_tok_split) and encode every word; out capacity >= 6 * len */
int64_t bn_bpe_tokenize(const bn_bpe *h, const int32_t *kinds, int32_t n_kinds,
                        const uint8_t *text, int64_t len, int32_t *out);

/* tiktoken-style BPE (the `tiktoken` library's encoding): tokens are n_tok raw byte strings
 * blob[offs[i]..offs[i+1]) with ranks[i] (= token ids). A word that is a token is that token;
 * else its bytes merge pairwise, lowest rank of the merged bytes first (leftmost on ties); a
 * final symbol without a rank fails (BN_TOK_ENOBYTE). Freed with bn_bpe_free. */
bn_bpe *bn_rank_bpe_new(int64_t n_tok, const uint8_t *blob, const int64_t *offs,
                        const int32_t *ranks);
/* The `regex` module's view of code points for cl100k_base's pattern, set once: cls[cpt] bit 1
 * \p{L}, 2 \p{N}, 4 \s; fold_cpt[i] matches the ASCII letter fold_to[i] under (?i) (n_fold <= 64) */
int bn_tok_set_regex_classes(const uint8_t *cls, int64_t n, const uint32_t *fold_cpt,
                             const uint8_t *fold_to, int64_t n_fold);
/* cl100k_base's pattern split in C, then every piece encoded (valid UTF-8 only: else
 * BN_TOK_EUTF8); out capacity >= len */
int64_t bn_tiktoken_cl100k(const bn_bpe *h, const uint8_t *text, int64_t len, int32_t *out);

/* SentencePiece BPE (llm_tokenizer_spm_session). Tokens: n_tok byte strings
 * blob[offs[i]..offs[i+1]) with token ids ids[i] and scores[ids[i]] (n_scores entries);
 * byte_tok[256]: byte fallback token per byte (-1: none, tokenizing it fails). */
typedef struct bn_spm bn_spm;
bn_spm *bn_spm_new(int64_t n_tok, const uint8_t *blob, const int64_t *offs, const int32_t *ids,
                   const double *scores, int64_t n_scores, const int32_t *byte_tok);
void bn_spm_free(bn_spm *h);
/* ids of `text` (spaces already escaped); out capacity >= len */
int64_t bn_spm_tokenize(const bn_spm *h, const uint8_t *text, int64_t len, int32_t *out);

/* handles alive (bn_bpe + bn_spm), for leak tests */
int64_t bn_tok_live_handles(void);

#endif
