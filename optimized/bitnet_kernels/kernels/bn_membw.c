/* bn_membw.c: the machine's memory read bandwidth, measured the way the matmuls read
 * weights (wide loads streamed by every thread over its own contiguous share), so the
 * decode benchmark can put its GB/s beside what the memory delivers. */
#include "bn_common.h"
#include "bn_api.h"

typedef struct {
    const uint8_t *p;
    size_t bytes;
    uint64_t sums[64];
} read_ctx;

#if BN_X86
static BN_TARGET_AVX2 uint64_t read_avx2(const uint8_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        a = _mm256_xor_si256(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_xor_si256(b, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
        c = _mm256_xor_si256(c, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
        d = _mm256_xor_si256(d, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, a);
    uint64_t s = lanes[0] ^ lanes[1] ^ lanes[2] ^ lanes[3];
    for (; i < n; i++) s ^= p[i];
    return s;
}
#endif

static uint64_t read_ref(const uint8_t *p, size_t n) {
    uint64_t s = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        s ^= v;
    }
    for (; i < n; i++) s ^= p[i];
    return s;
}

static void read_task(void *vctx, int ith, int nth) {
    read_ctx *c = (read_ctx *)vctx;
    const size_t chunk = ((c->bytes + (size_t)nth - 1) / (size_t)nth + 63) & ~(size_t)63;
    const size_t a = chunk * (size_t)ith < c->bytes ? chunk * (size_t)ith : c->bytes;
    const size_t b = a + chunk < c->bytes ? a + chunk : c->bytes;
#if BN_X86
    if (bn_isa_effective() >= BN_ISA_AVX2) {
        c->sums[ith] = read_avx2(c->p + a, b - a);
        return;
    }
#endif
    c->sums[ith] = read_ref(c->p + a, b - a);
}

uint64_t bn_read_bytes(const void *p, size_t bytes, int n_threads) {
    read_ctx c;
    memset(&c, 0, sizeof(c));
    c.p = (const uint8_t *)p;
    c.bytes = bytes;
    int nth = n_threads < 1 ? 1 : n_threads > 64 ? 64 : n_threads;
    if (nth > bn_max_threads()) nth = bn_max_threads();
    if (nth > 1) bn_parallel(read_task, &c, nth);
    else read_task(&c, 0, 1);
    uint64_t s = 0;
    for (int i = 0; i < nth; i++) s ^= c.sums[i];
    return s;
}
