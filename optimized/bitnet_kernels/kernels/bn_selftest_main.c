/* Standalone self-test binary (used under qemu for the aarch64/NEON build):
 *   cc -O3 -std=c99 -D_POSIX_C_SOURCE=200809L bn_*.c -lm -lpthread && ./a.out
 * Exit status 0 = every variant matches the scalar reference. */
#include "bn_api.h"

int main(void) { return bn_selftest(1) ? 1 : 0; }
