/* bn_peer_kq.c: Q4_K, Q5_K, Q6_K matmuls in llama.cpp's float order (see bn_peer_mm.c).
 *
 * Per output (row t, feature n) and 256-block b, with the weight's codes q (Q4_K 0..15,
 * Q5_K 0..31, Q6_K 0..63, used with a bias of 32), its f16 scales dx, dmin, sub-block
 * scales sc and mins mn, the Q8_K activation codes x with scale dy and bsums, and
 * P[c][L] = sum_{k<4} x*q over elements 32c + 4L + k (one int32 lane of a 32-byte register),
 * raw[s] = sum of x*q over sub-block s, S[s] = sum of x over sub-block s:
 *
 * ggml_vec_dot_q{4,5,6}_K_q8_K (arch/x86/quants.c, __AVX2__; T < 8 rows, or T >= 8 with
 * GGML_CPU_TILED_MM=0, not used here):
 *   Q4_K/Q5_K: sumi[L] = sum_s sc[s] P[s][L]; acc[L] = fma(dy * dx, sumi[L], acc[L]);
 *       Q4_K: pm[k] = mn[2k] S[2k] + mn[2k+1] S[2k+1]; accm[k] = fma(-dy * dmin, pm[k], accm[k]);
 *             y = hsum_float_8(acc) + ((accm0 + accm2) + (accm1 + accm3))
 *       Q5_K: summs = fma(-dy * dmin, float(sum_s mn[s] S[s]), summs); y = hsum_float_8(acc) + summs
 *   Q6_K: sumi[L] = sum_c sc[2c + L/4] P[c][L] - 32 (sc[2L] bs[2L] + sc[2L+1] bs[2L+1]);
 *         acc[L] = fma(dy * dx, sumi[L], acc[L]); y = hsum_float_8(acc)
 * tiled/tiled.cpp (T >= 8, weights not repacked; the AVX-512 VNNI microkernel):
 *   s1 = sum_s sc[s] (raw[s] - BIAS S[s]); r = float(s1) * dx; r = fma(-dmin, float(s2), r)
 *   with s2 = sum_s mn[s] S[s] (Q4_K/Q5_K; Q6_K: BIAS = 32, sub-blocks of 16, no s2);
 *   buf = fma(r, dy, buf) block after block; y = buf
 * repack.cpp q4_K_8x8 (Q4_K, N % 8 == 0): the first T - T % 4 rows by its GEMM, the rest by
 *   its GEMV; per step i = sum sc raw, m = sum mn S over the step's sub-blocks (GEMV: the
 *   block; GEMM: each pair 2p, 2p+1); acc = fma(float(i), dx * dy, acc);
 *   accm = fma(float(m), dmin * dy, accm); y = acc - accm
 * Integer sums are exact in any order; only the float steps above are fixed.
 */
#include "bn_peer.h"
#include "bn_api.h"

#include <stdlib.h>

#define KQ_SC 16 /* sub-block scales kept per block (Q4_K/Q5_K use 8) */

/* one unpacked row: codes (D), dx, dmin (nb), sc (16 nb), mn (8 nb) */
typedef struct {
    uint8_t *q;
    float *dx, *dmin;
    int32_t *sc, *mn;
} kq_row;

static inline float h2f(const uint8_t *p) {
    bn_half h;
    memcpy(&h, p, 2);
    return bn_fp16_to_fp32(h);
}

static void scale_min_k4(const uint8_t *q, int32_t *sc, int32_t *mn) { /* get_scale_min_k4 */
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = q[j] & 63;
            mn[j] = q[j + 4] & 63;
        } else {
            sc[j] = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            mn[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }
}

static void unpack_kq(int type, const uint8_t *w, int64_t nb, kq_row r) {
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *o = r.q + 256 * b;
        int32_t *sc = r.sc + KQ_SC * b, *mn = r.mn + 8 * b;
        if (type == BN_Q6_K) {
            const uint8_t *p = w + 210 * b, *ql = p, *qh = p + 128;
            const int8_t *scales = (const int8_t *)(p + 192);
            r.dx[b] = h2f(p + 208);
            r.dmin[b] = 0.0f;
            for (int j = 0; j < 16; j++) sc[j] = scales[j];
            for (int e = 0; e < 256; e++) {
                const int h = e / 128, g = (e % 128) / 32, l = e % 32;
                const uint8_t lb = ql[64 * h + 32 * (g % 2) + l];
                o[e] = (uint8_t)(((g / 2) ? (lb >> 4) : (lb & 0xF)) | (((qh[32 * h + l] >> (2 * g)) & 3) << 4));
            }
            continue;
        }
        const int q5 = type == BN_Q5_K;
        const uint8_t *p = w + (q5 ? 176 : 144) * b;
        r.dx[b] = h2f(p);
        r.dmin[b] = h2f(p + 2);
        scale_min_k4(p + 4, sc, mn);
        const uint8_t *qh = p + 16, *qs = p + (q5 ? 48 : 16);
        for (int s = 0; s < 8; s++)
            for (int l = 0; l < 32; l++) {
                const uint8_t byte = qs[32 * (s / 2) + l];
                uint8_t v = (s % 2) ? (byte >> 4) : (byte & 0xF);
                if (q5) v |= (uint8_t)(((qh[l] >> s) & 1) << 4);
                o[32 * s + l] = v;
            }
    }
}

/* the activation row of token t: codes, dy (nb), bsums (16 nb) */
typedef struct {
    const int8_t *x;
    const float *dy;
    const int32_t *bs;
} kq_act;

static kq_act kq_act_at(const bn_peer_mm *c, int64_t t) {
    const int64_t nb = c->D / QK_K;
    const uint8_t *p = c->act + (size_t)t * c->a_row;
    kq_act a;
    a.x = (const int8_t *)p;
    a.dy = (const float *)(p + c->D);
    a.bs = (const int32_t *)(a.dy + 2 * nb) + 8 * nb; /* after sa (nb) and the bias lanes */
    return a;
}

/* ---- the integer parts (exact; per variant) -------------------------------------------- */

/* P[c][L] for the 8 registers of block b */
static void lanes_ref(const uint8_t *q, const int8_t *x, int32_t P[8][8]) {
    for (int c = 0; c < 8; c++)
        for (int L = 0; L < 8; L++) {
            int32_t s = 0;
            for (int k = 0; k < 4; k++) s += (int32_t)q[32 * c + 4 * L + k] * x[32 * c + 4 * L + k];
            P[c][L] = s;
        }
}

#if BN_X86
static BN_TARGET_AVX2 void lanes_avx2(const uint8_t *q, const int8_t *x, int32_t P[8][8]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int c = 0; c < 8; c++) {
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(q + 32 * c)),
                                                                 _mm256_loadu_si256((const __m256i *)(x + 32 * c))),
                                            ones);
        _mm256_storeu_si256((__m256i *)P[c], p);
    }
}
#endif

static void lanes(int isa, const uint8_t *q, const int8_t *x, int32_t P[8][8]) {
#if BN_X86
    if (isa >= BN_ISA_AVX2 && isa != BN_ISA_NEON) {
        lanes_avx2(q, x, P);
        return;
    }
#endif
    (void)isa;
    lanes_ref(q, x, P);
}

/* ---- the float orders ------------------------------------------------------------------ */

static float dot_vec(int type, int isa, const kq_row *w, kq_act a, int64_t nb) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, accm[4] = {0, 0, 0, 0}, summs = 0.0f;
    int32_t P[8][8];
    for (int64_t b = 0; b < nb; b++) {
        lanes(isa, w->q + 256 * b, a.x + 256 * b, P);
        const int32_t *sc = w->sc + KQ_SC * b, *mn = w->mn + 8 * b, *bs = a.bs + 16 * b;
        int32_t sumi[8];
        for (int L = 0; L < 8; L++) {
            int32_t s = 0;
            if (type == BN_Q6_K) {
                for (int c = 0; c < 8; c++) s += sc[2 * c + L / 4] * P[c][L];
                s -= 32 * (sc[2 * L] * bs[2 * L] + sc[2 * L + 1] * bs[2 * L + 1]);
            } else {
                for (int c = 0; c < 8; c++) s += sc[c] * P[c][L];
            }
            sumi[L] = s;
        }
        const float d = a.dy[b] * w->dx[b];
        for (int L = 0; L < 8; L++) acc[L] = fmaf(d, (float)sumi[L], acc[L]);
        if (type == BN_Q6_K) continue;
        const float dm = -a.dy[b] * w->dmin[b];
        int32_t S[8];
        for (int s = 0; s < 8; s++) S[s] = bs[2 * s] + bs[2 * s + 1];
        if (type == BN_Q4_K) {
            for (int k = 0; k < 4; k++) accm[k] = fmaf(dm, (float)(mn[2 * k] * S[2 * k] + mn[2 * k + 1] * S[2 * k + 1]), accm[k]);
        } else {
            int32_t pm = 0;
            for (int s = 0; s < 8; s++) pm += mn[s] * S[s];
            summs = fmaf(dm, (float)pm, summs);
        }
    }
    const float y = bn_hsum8(acc);
    if (type == BN_Q4_K) return y + ((accm[0] + accm[2]) + (accm[1] + accm[3]));
    return type == BN_Q5_K ? y + summs : y;
}

static float dot_tiled(int type, int isa, const kq_row *w, kq_act a, int64_t nb) {
    const int q6 = type == BN_Q6_K;
    float buf = 0.0f;
    int32_t P[8][8];
    for (int64_t b = 0; b < nb; b++) {
        lanes(isa, w->q + 256 * b, a.x + 256 * b, P);
        const int32_t *sc = w->sc + KQ_SC * b, *mn = w->mn + 8 * b, *bs = a.bs + 16 * b;
        int32_t s1 = 0, s2 = 0;
        if (q6) { /* sub-blocks of 16: lanes 0-3 / 4-7 of register c */
            for (int s = 0; s < 16; s++) {
                const int32_t *pc = P[s / 2] + 4 * (s % 2);
                s1 += sc[s] * (pc[0] + pc[1] + pc[2] + pc[3] - 32 * bs[s]);
            }
        } else {
            for (int s = 0; s < 8; s++) {
                int32_t raw = 0;
                for (int L = 0; L < 8; L++) raw += P[s][L];
                s1 += sc[s] * raw;
                s2 += mn[s] * (bs[2 * s] + bs[2 * s + 1]);
            }
        }
        float r = (float)s1 * w->dx[b];
        if (!q6) r = fmaf(-w->dmin[b], (float)s2, r);
        buf = fmaf(r, a.dy[b], buf);
    }
    return buf;
}

static float dot_q4k_repack(int isa, const kq_row *w, kq_act a, int64_t nb, int gemm) {
    float acc = 0.0f, accm = 0.0f;
    int32_t P[8][8];
    const int step = gemm ? 2 : 8; /* sub-blocks per float step */
    for (int64_t b = 0; b < nb; b++) {
        lanes(isa, w->q + 256 * b, a.x + 256 * b, P);
        const int32_t *sc = w->sc + KQ_SC * b, *mn = w->mn + 8 * b, *bs = a.bs + 16 * b;
        const float dd = w->dx[b] * a.dy[b], dm = w->dmin[b] * a.dy[b];
        for (int s0 = 0; s0 < 8; s0 += step) {
            int32_t i = 0, m = 0;
            for (int s = s0; s < s0 + step; s++) {
                int32_t raw = 0;
                for (int L = 0; L < 8; L++) raw += P[s][L];
                i += sc[s] * raw;
                m += mn[s] * (bs[2 * s] + bs[2 * s + 1]);
            }
            acc = fmaf((float)i, dd, acc);
            accm = fmaf((float)m, dm, accm);
        }
    }
    return acc - accm;
}

void bn_peer_kq_rows(const bn_peer_mm *c, float *y, int64_t ldy, int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
    const int64_t nb = c->D / QK_K;
    const size_t need = (size_t)c->D + sizeof(float) * (size_t)(2 * nb) + sizeof(int32_t) * (size_t)((KQ_SC + 8) * nb);
    uint8_t stack_buf[16384];
    uint8_t *buf = need <= sizeof(stack_buf) ? stack_buf : (uint8_t *)malloc(need);
    if (!buf) return;
    kq_row w;
    w.q = buf;
    w.dx = (float *)(buf + c->D);
    w.dmin = w.dx + nb;
    w.sc = (int32_t *)(w.dmin + nb);
    w.mn = w.sc + KQ_SC * nb;
    const int64_t gemm_rows = c->T - c->T % 4; /* q4_K_8x8: GEMM for these rows, GEMV after */
    for (int64_t n = n0; n < n1; n++) {
        unpack_kq(c->type, c->w + (size_t)n * c->w_row, nb, w);
        for (int64_t t = t0; t < t1; t++) {
            const kq_act a = kq_act_at(c, t);
            float v;
            if (c->order == BN_ORDER_REPACK) v = dot_q4k_repack(c->isa, &w, a, nb, t < gemm_rows);
            else if (c->order == BN_ORDER_TILED) v = dot_tiled(c->type, c->isa, &w, a, nb);
            else v = dot_vec(c->type, c->isa, &w, a, nb);
            y[t * ldy + n] = v;
        }
    }
    if (buf != stack_buf) free(buf);
}
