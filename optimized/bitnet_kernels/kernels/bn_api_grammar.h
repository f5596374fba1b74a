/* bn_api_grammar.h: the grammar sampler's hot path (bn_grammar.c), called by
 * bitnet_kernels.grammar_engine (the C engine of bitnet.constraints.grammar_constraint).
 *
 * Which candidate tokens a GBNF grammar state rejects, as llama.cpp's
 * llama_grammar_reject_candidates decides it, over the same flattened elements as the Python
 * reference (reference/bitnet/constraints/grammar.py): types[p] / values[p] for every element p
 * of all rules end to end, rule_start[r] the first element of rule r. A state is a set of
 * stacks of element positions (bottom first) plus a pending partial UTF-8 sequence. Handles are
 * immutable after construction and safe to share between threads.
 */
#ifndef BN_API_GRAMMAR_H
#define BN_API_GRAMMAR_H
#include <stdint.h>

#define BN_GRAMMAR_EARG -1  /* malformed grammar, stack or candidate */
#define BN_GRAMMAR_ENOMEM -3

typedef struct bn_grammar bn_grammar;
/* NULL when out of memory or when the arrays are inconsistent */
bn_grammar *bn_grammar_new(const int32_t *types, const uint32_t *values, int32_t n_elems,
                           const int32_t *rule_start, int32_t n_rules);
void bn_grammar_free(bn_grammar *g);

/* token t's piece (token_to_piece with special=true) is blob[offs[t]..offs[t+1]) */
typedef struct bn_grammar_vocab bn_grammar_vocab;
bn_grammar_vocab *bn_grammar_vocab_new(const uint8_t *blob, const int64_t *offs, int32_t n_tokens);
void bn_grammar_vocab_free(bn_grammar_vocab *v);

/* rejected[i] = 1 if token ids[i] cannot come next, else 0. The state: n_stacks stacks, stack s
 * being stack_data[sum(stack_lens[:s]) ...] of length stack_lens[s], and the partial UTF-8
 * sequence (partial_value, partial_n_remain). The caller handles end-of-generation tokens and
 * empty pieces (ids must be other tokens). Returns 0, or BN_GRAMMAR_E* (rejected undefined). */
int32_t bn_grammar_reject(const bn_grammar *g, const bn_grammar_vocab *v, const uint32_t *stack_data,
                          const int32_t *stack_lens, int32_t n_stacks, uint32_t partial_value,
                          int32_t partial_n_remain, const int32_t *ids, int32_t n_ids,
                          uint8_t *rejected);

#endif
