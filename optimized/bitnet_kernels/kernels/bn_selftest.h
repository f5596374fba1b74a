/* bn_selftest.h: helpers shared by the self-test files (bn_selftest.c, bn_selftest_peer.c). */
#ifndef BN_SELFTEST_H
#define BN_SELFTEST_H
#include <stddef.h>
#include <stdint.h>

uint32_t bn_st_rnd(void);
float bn_st_rndf(void); /* uniform in [-1, 1) */
float *bn_st_guarded_alloc(size_t n); /* n floats between guard floats */
int bn_st_guards_ok(const float *p, size_t n);
void bn_st_guarded_free(float *p);
/* 0 when ok, else 1 (and a FAIL line on stderr when verbose) */
int bn_st_check(int ok, int verbose, const char *what, int isa, const char *detail, double e);
/* the llama.cpp-order kernels, every variant vs scalar bit for bit (bn_selftest_peer.c) */
int bn_selftest_peer(const int *isas, int n_isas, int verbose);

#endif
