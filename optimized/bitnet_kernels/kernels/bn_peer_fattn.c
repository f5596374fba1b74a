/* bn_peer_fattn.c: attention by llama.cpp's flash-attention kernel, in its float order.
 *
 * ggml_compute_forward_flash_attn_ext_f16 (ggml-cpu/ops.cpp, x86 AVX-512 build), q F32, K and V
 * of the cache type (F16 or F32; V not transposed), the causal mask (masked cells add nothing).
 * The path depends on the ubatch's T queries, llama.cpp's KV view n_view and its thread count
 * nth (the numpy reference and the full statement: bitnet.numerics.flash):
 *   tiled (T >= 64): per 64-cell tile from cell 0: kq = fma chain over d of k * q (q not
 *       rounded) times scale; Mnew = fmaxf(M, tile max); if it grew: ms = expf(M - Mnew),
 *       acc *= ms, S *= ms; p = ggml_v_expf(kq - Mnew); S = (float)((double)S + the double sum
 *       of the four 16-lane reductions); acc = fma(v, p, acc) cell by cell.
 *   one chunk (else): q rounded to f16 (F16 cache); per visible cell s = ggml_vec_dot_f16 *
 *       scale; a new max: ms = expf(M - s), acc = f16(acc * ms), vs = 1; else vs = expf(s - M);
 *       acc = f16(fma(v, vs, acc)) (F32 cache: no rounding); S = fma(S, ms, vs).
 *   split-KV (T == 1, n_view >= 512): the one-chunk loop per chunk of ceil(n_view / nth)
 *       cells, merged in chunk order (ggml_flash_attn_ext_reduce_partials): Mn = fmaxf(M, Mj),
 *       so = expf(M - Mn), sn = expf(Mj - Mn); acc = fma(acc, so, accj * sn); S likewise.
 * Every path ends with acc * (S == 0 ? 0 : 1.0f / S). expf is libm's, as in llama.cpp.
 * The loops are compiled per ISA (fmaf an instruction) with the same operations.
 */
#include "bn_peer.h"
#include "bn_api.h"

#define FA_TILE 64       /* GGML_FA_TILE_Q and GGML_FA_TILE_KV */
#define FA_SPLIT_MIN 512 /* the split-KV path's minimum KV view */

typedef struct {
    float m, s;
} fa_state;

#define FA_INLINE static inline __attribute__((always_inline))

/* the _one_chunk loop over cells [c0, c1) of kv head rows kb / vb (row bytes apart) */
FA_INLINE void fa_cells(const bn_peer_attn *a, const float *qv, const uint8_t *kb, const uint8_t *vb, size_t row,
                        int64_t c0, int64_t c1, int64_t qp, float *acc, fa_state *st) {
    const int f16 = a->kv_f16;
    const int64_t d = a->d;
    for (int64_t ic = c0; ic < c1; ic++) {
        const int64_t kp = a->kv_pos[ic];
        if (kp < 0 || kp > qp) continue;
        const float s = peer_dot(qv, kb + (size_t)ic * row, f16, d, 0) * a->scale;
        float ms = 1.0f, vs = 1.0f;
        if (s > st->m) {
            ms = expf(st->m - s);
            st->m = s;
            for (int64_t j = 0; j < d; j++) acc[j] = f16 ? round_f16(acc[j] * ms) : acc[j] * ms;
        } else {
            vs = expf(s - st->m);
        }
        const uint8_t *vr = vb + (size_t)ic * row;
        for (int64_t j = 0; j < d; j++) {
            const float y = fmaf(kv_at(vr, f16, j), vs, acc[j]);
            acc[j] = f16 ? round_f16(y) : y;
        }
        st->s = fmaf(st->s, ms, vs);
    }
}

/* the split-KV path: chunks of ceil(n_view / nth) cells merged in order into acc */
FA_INLINE void fa_split(const bn_peer_attn *a, const float *qv, const uint8_t *kb, const uint8_t *vb, size_t row,
                        int64_t qp, float *acc, float *part, fa_state *st) {
    const int64_t d = a->d, nth = a->fa_threads < 1 ? 1 : a->fa_threads;
    const int64_t chunk = (a->n_view + nth - 1) / nth;
    for (int64_t j = 0; j < nth; j++) {
        const int64_t c0 = j * chunk;
        if (c0 >= a->n_view) continue;
        int64_t c1 = c0 + chunk < a->n_view ? c0 + chunk : a->n_view;
        if (c1 > a->K) c1 = a->K;
        fa_state ps = {-INFINITY, 0.0f};
        memset(part, 0, sizeof(float) * (size_t)d);
        fa_cells(a, qv, kb, vb, row, c0, c1, qp, part, &ps);
        if (ps.s == 0.0f) continue;
        const float mn = fmaxf(st->m, ps.m), so = expf(st->m - mn), sn = expf(ps.m - mn);
        for (int64_t i = 0; i < d; i++) acc[i] = fmaf(acc[i], so, part[i] * sn);
        st->s = fmaf(st->s, so, ps.s * sn);
        st->m = mn;
    }
}

/* the tiled path (T >= 64); kq, p: FA_TILE floats each */
FA_INLINE void fa_tiled(const bn_peer_attn *a, const float *q, const uint8_t *kb, const uint8_t *vb, size_t row,
                        int64_t qp, float *acc, float *kq, float *p, fa_state *st) {
    const int f16 = a->kv_f16;
    const int64_t d = a->d;
    for (int64_t ic = 0; ic < a->K; ic += FA_TILE) {
        const int64_t n = a->K - ic < FA_TILE ? a->K - ic : FA_TILE;
        float tmax = -INFINITY;
        for (int64_t j = 0; j < FA_TILE; j++) {
            const int64_t kp = j < n ? a->kv_pos[ic + j] : -1;
            kq[j] = -INFINITY;
            if (kp < 0 || kp > qp) continue;
            const uint8_t *kr = kb + (size_t)(ic + j) * row;
            float dot = 0.0f;
            for (int64_t i = 0; i < d; i++) dot = fmaf(kv_at(kr, f16, i), q[i], dot);
            kq[j] = dot * a->scale;
            tmax = kq[j] > tmax ? kq[j] : tmax;
        }
        if (tmax == -INFINITY) continue; /* nothing visible in this tile */
        const float mn = fmaxf(st->m, tmax);
        if (mn > st->m) {
            const float ms = expf(st->m - mn);
            for (int64_t i = 0; i < d; i++) acc[i] = acc[i] * ms;
            st->s = st->s * ms;
        }
        st->m = mn;
        for (int64_t j = 0; j < FA_TILE; j++) p[j] = kq[j] - mn;
        bn_peer_expf(p, p, FA_TILE);
        double sum = 0.0;
        for (int g = 0; g < FA_TILE / 16; g++) sum += (double)bn_reduce16(p + 16 * g);
        st->s = (float)((double)st->s + sum);
        for (int64_t j = 0; j < n; j++) {
            if (p[j] == 0.0f) continue; /* masked: adds exact zeros */
            const uint8_t *vr = vb + (size_t)(ic + j) * row;
            for (int64_t i = 0; i < d; i++) acc[i] = fmaf(kv_at(vr, f16, i), p[j], acc[i]);
        }
    }
}

FA_INLINE void fa_core(const bn_peer_attn *a, int64_t t, int64_t h, const float *qr, float *scratch) {
    const int f16 = a->kv_f16;
    const int64_t d = a->d, kvh = h / (a->H / a->Hkv), qp = a->q_pos[t];
    const size_t esz = f16 ? 2 : 4, row = (size_t)(a->Hkv * d) * esz;
    const uint8_t *kb = a->k + (size_t)kvh * d * esz, *vb = a->v + (size_t)kvh * d * esz;
    float *acc = scratch, *qv = acc + d, *part = qv + d, *kq = part + d, *p = kq + FA_TILE;
    fa_state st = {-INFINITY, 0.0f};
    memset(acc, 0, sizeof(float) * (size_t)d);
    if (a->T >= FA_TILE) {
        fa_tiled(a, qr, kb, vb, row, qp, acc, kq, p, &st);
    } else {
        for (int64_t i = 0; i < d; i++) qv[i] = f16 ? round_f16(qr[i]) : qr[i];
        if (a->T == 1 && a->n_view >= FA_SPLIT_MIN) fa_split(a, qv, kb, vb, row, qp, acc, part, &st);
        else fa_cells(a, qv, kb, vb, row, 0, a->K, qp, acc, &st);
    }
    const float inv = st.s == 0.0f ? 0.0f : 1.0f / st.s;
    float *o = a->out + (t * a->H + h) * d;
    for (int64_t i = 0; i < d; i++) o[i] = acc[i] * inv;
}

static void fa_ref(const bn_peer_attn *a, int64_t t, int64_t h, const float *qr, float *s) { fa_core(a, t, h, qr, s); }
#if BN_X86
static BN_TARGET_AVX2 void fa_avx2(const bn_peer_attn *a, int64_t t, int64_t h, const float *qr, float *s) {
    fa_core(a, t, h, qr, s);
}
static BN_TARGET_AVX512 void fa_avx512(const bn_peer_attn *a, int64_t t, int64_t h, const float *qr, float *s) {
    fa_core(a, t, h, qr, s);
}
#endif

/* query (t, h); scratch: bn_peer_attn_scratch(K, d) floats (>= 3 d + 2 FA_TILE) */
void bn_peer_fattn_one(const bn_peer_attn *a, int64_t t, int64_t h, const float *qr, float *scratch) {
    switch (bn_pick(K_ATTENTION)) {
#if BN_X86
    case BN_ISA_AVX512: fa_avx512(a, t, h, qr, scratch); return;
    case BN_ISA_AVX2: fa_avx2(a, t, h, qr, scratch); return;
#endif
    default: fa_ref(a, t, h, qr, scratch);
    }
}
