/* bn_forward.c: attention over the KV cache, and the fused forward of all layers.
 *
 * The fused forward is bitnet.model.graphs.forward step for step (same kernels: bn_mm_* of
 * bn_float_mm.c, bn_rms_norm, bn_rope, bn_swiglu / bn_relu2_glu, bn_softmax), so it gives the
 * same bits as the per-op path through OptimizedBackend; what it removes is the per-op cost:
 * the Python calls, the numpy temporaries, and one thread-pool wake per matmul. All threads
 * run the whole batch in one parallel region; steps split either the output features of a
 * matmul (n-split), the token rows (t-split) or the (token, head) pairs of attention, with a
 * spin barrier between steps that need each other's results.
 *
 * Attention has a scalar, an AVX2 (F16C for the f16 cache, also used under AVX-512) and a
 * NEON variant of its two inner loops: q.k over a cache row and out += p * v.
 */
#include "bn_peer.h"
#include "bn_api.h"
#include "bn_api_forward.h"

#include <stdlib.h>

/* ================================================================================= */
/* attention inner loops                                                             */

static float attn_dot_ref(const float *q, const void *k, int64_t d, int f16) {
    float s = 0.0f;
    if (f16) {
        const bn_half *kh = (const bn_half *)k;
        for (int64_t i = 0; i < d; i++) s += q[i] * bn_fp16_to_fp32(kh[i]);
    } else {
        const float *kf = (const float *)k;
        for (int64_t i = 0; i < d; i++) s += q[i] * kf[i];
    }
    return s;
}

static void attn_axpy_ref(float *out, float p, const void *v, int64_t d, int f16) {
    if (f16) {
        const bn_half *vh = (const bn_half *)v;
        for (int64_t i = 0; i < d; i++) out[i] += p * bn_fp16_to_fp32(vh[i]);
    } else {
        const float *vf = (const float *)v;
        for (int64_t i = 0; i < d; i++) out[i] += p * vf[i];
    }
}

#if BN_X86
static BN_TARGET_AVX2 float attn_dot_avx2(const float *q, const void *k, int64_t d, int f16) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    if (f16) {
        const bn_half *kh = (const bn_half *)k;
        for (; i + 8 <= d; i += 8) {
            const __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kh + i)));
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), kv, acc);
        }
    } else {
        const float *kf = (const float *)k;
        for (; i + 8 <= d; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kf + i), acc);
    }
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    float s = _mm_cvtss_f32(r);
    for (; i < d; i++)
        s += q[i] * (f16 ? _cvtsh_ss(((const bn_half *)k)[i]) : ((const float *)k)[i]);
    return s;
}

static BN_TARGET_AVX2 void attn_axpy_avx2(float *out, float p, const void *v, int64_t d, int f16) {
    const __m256 pv = _mm256_set1_ps(p);
    int64_t i = 0;
    if (f16) {
        const bn_half *vh = (const bn_half *)v;
        for (; i + 8 <= d; i += 8) {
            const __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vh + i)));
            _mm256_storeu_ps(out + i, _mm256_fmadd_ps(pv, vv, _mm256_loadu_ps(out + i)));
        }
    } else {
        const float *vf = (const float *)v;
        for (; i + 8 <= d; i += 8)
            _mm256_storeu_ps(out + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(vf + i), _mm256_loadu_ps(out + i)));
    }
    for (; i < d; i++) out[i] += p * (f16 ? _cvtsh_ss(((const bn_half *)v)[i]) : ((const float *)v)[i]);
}
#endif

#if defined(__aarch64__)
static inline float32x4_t load4_kv(const void *p, int64_t i, int f16) {
    if (f16) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)p + i)));
    return vld1q_f32((const float *)p + i);
}

static float attn_dot_neon(const float *q, const void *k, int64_t d, int f16) {
    float32x4_t acc = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 4 <= d; i += 4) acc = vfmaq_f32(acc, vld1q_f32(q + i), load4_kv(k, i, f16));
    float s = vaddvq_f32(acc);
    for (; i < d; i++)
        s += q[i] * (f16 ? bn_fp16_to_fp32(((const bn_half *)k)[i]) : ((const float *)k)[i]);
    return s;
}

static void attn_axpy_neon(float *out, float p, const void *v, int64_t d, int f16) {
    int64_t i = 0;
    for (; i + 4 <= d; i += 4) vst1q_f32(out + i, vfmaq_n_f32(vld1q_f32(out + i), load4_kv(v, i, f16), p));
    for (; i < d; i++) out[i] += p * (f16 ? bn_fp16_to_fp32(((const bn_half *)v)[i]) : ((const float *)v)[i]);
}
#endif

typedef float (*attn_dot_fn)(const float *, const void *, int64_t, int);
typedef void (*attn_axpy_fn)(float *, float, const void *, int64_t, int);

static void pick_attn(attn_dot_fn *dot, attn_axpy_fn *axpy) {
    switch (bn_pick(K_ATTENTION)) {
#if BN_X86
    case BN_ISA_AVX512: /* the AVX2 loops: d = 64 rows are too short for 16 lanes to pay */
    case BN_ISA_AVX2: *dot = attn_dot_avx2; *axpy = attn_axpy_avx2; return;
#endif
#if defined(__aarch64__)
    case BN_ISA_NEON: *dot = attn_dot_neon; *axpy = attn_axpy_neon; return;
#endif
    default: *dot = attn_dot_ref; *axpy = attn_axpy_ref; return;
    }
}

/* ================================================================================= */
/* attention                                                                          */

typedef struct {
    const float *q;
    const uint8_t *k, *v;
    int kv_f16, peer; /* peer: llama.cpp's order (bn_peer_attn_one) */
    int64_t T, H, Hkv, d, K;
    const int64_t *q_pos, *kv_pos;
    int64_t kv_stride; /* kv_pos of query t: kv_pos + t * kv_stride */
    float scale;
    float *out;
    attn_dot_fn dot;
    attn_axpy_fn axpy;
    int flash, fa_threads; /* peer: llama.cpp's flash-attention kernel (bn_peer_fattn.c) */
    int64_t n_view;
} attn_args;

/* query (t, h) with its q row qr (roped): s is bn_peer_attn_scratch(K, d) floats */
static void attn_one_q(const attn_args *a, int64_t t, int64_t h, const float *qr, float *s) {
    if (a->peer) {
        const bn_peer_attn pa = {a->k, a->v, a->kv_f16, a->T, a->H, a->Hkv, a->d, a->K, a->q_pos, a->kv_pos,
                                 a->kv_stride, a->scale, a->out, a->flash, a->fa_threads, a->n_view};
        bn_peer_attn_one(&pa, t, h, qr, s);
        return;
    }
    const int64_t d = a->d, group = a->H / a->Hkv, kvh = h / group;
    const size_t esz = a->kv_f16 ? 2 : 4;
    const size_t row = (size_t)(a->Hkv * d) * esz; /* bytes per cache cell */
    const int64_t qp = a->q_pos[t], *kv_pos = a->kv_pos + t * a->kv_stride;
    for (int64_t k = 0; k < a->K; k++) {
        const int64_t kp = kv_pos[k];
        s[k] = (kp >= 0 && kp <= qp) ? a->dot(qr, a->k + k * row + (size_t)kvh * d * esz, d, a->kv_f16) * a->scale
                                     : -INFINITY;
    }
    bn_softmax(s, s, 1, a->K);
    float *o = a->out + (t * a->H + h) * d;
    for (int64_t i = 0; i < d; i++) o[i] = 0.0f;
    for (int64_t k = 0; k < a->K; k++) {
        const float p = s[k];
        if (p != 0.0f) a->axpy(o, p, a->v + k * row + (size_t)kvh * d * esz, d, a->kv_f16);
    }
}

static void attn_one(const attn_args *a, int64_t t, int64_t h, float *s) {
    attn_one_q(a, t, h, a->q + (t * a->H + h) * a->d, s);
}

/* (t, h) pairs [ith * chunk, ...) of T * H */
static void attn_range(const attn_args *a, int ith, int nth, float *s) {
    const int64_t total = a->T * a->H, chunk = (total + nth - 1) / nth;
    const int64_t p0 = chunk * ith, p1 = p0 + chunk < total ? p0 + chunk : total;
    for (int64_t p = p0; p < p1; p++) attn_one(a, p / a->H, p % a->H, s);
}

typedef struct { attn_args a; int failed; } attn_task_ctx;

static void attn_task(void *vctx, int ith, int nth) {
    attn_task_ctx *c = (attn_task_ctx *)vctx;
    const int64_t need = bn_peer_attn_scratch(c->a.K, c->a.d); /* >= K for the float order */
    float *buf = (float *)malloc(sizeof(float) * (size_t)need);
    if (!buf) { c->failed = 1; return; }
    attn_range(&c->a, ith, nth, buf);
    free(buf);
}

static int attn_shape_ok(int64_t T, int64_t H, int64_t Hkv, int64_t d, int64_t K) {
    return T >= 0 && H > 0 && Hkv > 0 && H % Hkv == 0 && d > 0 && K >= 0;
}

static int attn_run(const attn_args *a, int n_threads) {
    attn_task_ctx c;
    memset(&c, 0, sizeof(c));
    c.a = *a;
    pick_attn(&c.a.dot, &c.a.axpy);
    const int64_t T = a->T, H = a->H;
    if (T == 0) return 0;
    if (n_threads < 1) n_threads = 1;
    if (n_threads > T * H) n_threads = (int)(T * H);
    bn_parallel(attn_task, &c, n_threads);
    return c.failed ? -3 : 0;
}

int bn_attention(const float *q, const void *k, const void *v, int kv_f16, int64_t T, int64_t H,
                 int64_t Hkv, int64_t d, int64_t K, const int64_t *q_pos, const int64_t *kv_pos,
                 int64_t kv_stride, float scale, int peer, float *out, int n_threads) {
    if (!attn_shape_ok(T, H, Hkv, d, K) || (kv_stride != 0 && kv_stride != K)) return -2;
    const attn_args a = {q, (const uint8_t *)k, (const uint8_t *)v, kv_f16 != 0, peer != 0, T, H, Hkv,
                         d, K, q_pos, kv_pos, kv_stride, scale, out, NULL, NULL, 0, 0, 0};
    return attn_run(&a, n_threads);
}

int bn_flash_attention(const float *q, const void *k, const void *v, int kv_f16, int64_t T, int64_t H,
                       int64_t Hkv, int64_t d, int64_t K, const int64_t *q_pos, const int64_t *kv_pos,
                       int64_t kv_stride, float scale, int64_t n_view, int fa_threads, float *out, int n_threads) {
    if (!attn_shape_ok(T, H, Hkv, d, K) || n_view < K || (kv_stride != 0 && kv_stride != K)) return -2;
    const attn_args a = {q, (const uint8_t *)k, (const uint8_t *)v, kv_f16 != 0, 1, T, H, Hkv,
                         d, K, q_pos, kv_pos, kv_stride, scale, out, NULL, NULL, 1, fa_threads, n_view};
    return attn_run(&a, n_threads);
}

/* ================================================================================= */
/* the fused forward                                                                  */

enum { MM_Q, MM_K, MM_V, MM_O, MM_GATE, MM_UP, MM_DOWN, MM_COUNT };

/* The float path (bn_model.mode 0; mode 1, llama.cpp's order, is bn_peer_forward.c).
 * Work split, to keep barriers few (5 per layer for one token, 6 for a batch):
 *   shared: the matmul outputs q, k, v, attn, o, gate, up (each thread writes its slice)
 *           and the KV cache;
 *   private (per thread, computed redundantly, identical bits): the residual stream x and
 *           the normed inputs. They cost O(T*D) beside the O(T*D*N) matmuls and save a
 *           barrier plus a serial section per step.
 * A layer: [private] norm; [n-split] q,k,v | [kv-head split] rope k, store k,v;
 * (one token: the same thread also runs the query heads of its kv heads, no barrier; a
 * batch: | then (token, head) pairs) rope q, attention | [private] sub-norm;
 * [n-split] wo | [private] residual, norm; [n-split] gate, up | [private] GLU,
 * sub-norm; [n-split] down | [private] residual.  ("|" = barrier) */
typedef struct {
    const bn_model *m;
    float *x, *out;
    int64_t T, n_out;
    const int64_t *positions, *cells, *kv_pos; /* cells: where each token's keys and values go */
    uint8_t *k_cache, *v_cache;
    int kv_f16;
    int64_t n_ctx, n_kv, kv_stride;
    const float *cos_t, *sin_t;
    float *q, *k, *v, *attn, *o, *gate, *up; /* shared (T, width) rows */
    uint8_t *priv;                           /* per-thread blocks of priv_stride bytes */
    size_t priv_stride;
    bn_barrier bar;
    attn_dot_fn dot;
    attn_axpy_fn axpy;
    int failed;
} fwd_ctx;

static void linear_post(const bn_linear *l, float *y, int64_t T, int64_t n0, int64_t n1) {
    if (l->scale == 0.0f && !l->bias) return;
    for (int64_t t = 0; t < T; t++) {
        float *r = y + t * l->n_out;
        if (l->scale != 0.0f)
            for (int64_t n = n0; n < n1; n++) r[n] = r[n] * l->scale;
        if (l->bias)
            for (int64_t n = n0; n < n1; n++) r[n] = r[n] + l->bias[n];
    }
}

/* this thread's share of the output rows of matmuls mm[0..cnt) (one shared input) */
static void mm_group(fwd_ctx *c, bn_mm *mm, const bn_linear *const *lins, int cnt, int ith, int nth) {
    int64_t total = 0;
    for (int i = 0; i < cnt; i++) total += mm[i].N;
    const int64_t chunk = (total + nth - 1) / nth;
    const int64_t r0 = chunk * ith, r1 = r0 + chunk < total ? r0 + chunk : total;
    int64_t base = 0;
    for (int i = 0; i < cnt; i++) {
        const int64_t a = r0 > base ? r0 - base : 0;
        const int64_t b = r1 - base < mm[i].N ? r1 - base : mm[i].N;
        if (a < b) {
            bn_mm_rows(&mm[i], a, b);
            if (mm[i].failed) c->failed = 1;
            linear_post(lins[i], mm[i].y, c->T, a, b);
        }
        base += mm[i].N;
    }
}

static void fwd_task(void *vctx, int ith, int nth) {
    fwd_ctx *c = (fwd_ctx *)vctx;
    const bn_model *m = c->m;
    const int64_t T = c->T, D = m->n_embd, H = m->n_head, Hkv = m->n_head_kv, hd = m->head_dim;
    const int64_t F = m->n_ff, qw = H * hd, kw = Hkv * hd, half = m->rope_dims / 2, group = H / Hkv;
    const int64_t wmax = D > qw ? D : qw;
    const size_t esz = c->kv_f16 ? 2 : 4;
    /* private block: x (T, D), h (T, wmax), act (T, F), scratch */
    uint8_t *pb = c->priv + (size_t)ith * c->priv_stride;
    float *x = (float *)pb;
    float *h = x + T * D;
    float *act = h + T * wmax;
    float *scratch = act + T * F; /* attention scratch, then a roped q row */
    const int64_t attn_n = bn_peer_attn_scratch(c->n_kv, hd); /* >= n_kv */
    memcpy(x, c->x, sizeof(float) * (size_t)(T * D));
    /* kv heads of this thread (attention of one token runs by kv head, see above) */
    const int64_t gchunk = (Hkv + nth - 1) / nth;
    const int64_t g0 = gchunk * ith < Hkv ? gchunk * ith : Hkv, g1 = g0 + gchunk < Hkv ? g0 + gchunk : Hkv;

    for (int il = 0; il < m->n_layer; il++) {
        const bn_layer *L = &m->layers[il];
        const bn_linear *lins[MM_COUNT] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        const float *ins[MM_COUNT] = {h, h, h, h, h, h, act};
        float *outs[MM_COUNT] = {c->q, c->k, c->v, c->o, c->gate, c->up, c->o};
        bn_mm mm[MM_COUNT];
        for (int s = 0; s < MM_COUNT; s++)
            bn_mm_setup(&mm[s], lins[s]->type, lins[s]->w, lins[s]->n_out, lins[s]->n_in, ins[s], T,
                        outs[s]); /* checked in bn_forward */
        /* attn_norm; q, k, v */
        bn_rms_norm(x, L->attn_norm, h, T, D, m->eps);
        mm_group(c, mm + MM_Q, lins + MM_Q, 3, ith, nth);
        bn_barrier_wait(&c->bar, nth);
        /* rope k and store k, v of kv heads g0..g1 */
        const size_t lay = (size_t)il * (size_t)c->n_ctx * (size_t)kw * esz;
        for (int64_t t = 0; t < T; t++) {
            const float *ct = c->cos_t + t * half, *st = c->sin_t + t * half;
            const size_t cell = lay + (size_t)c->cells[t] * (size_t)kw * esz;
            for (int64_t g = g0; g < g1; g++) {
                float *kr = c->k + t * kw + g * hd;
                const float *vr = c->v + t * kw + g * hd;
                bn_rope(kr, kr, 1, 1, hd, ct, st, m->rope_dims, m->rope_mode);
                if (c->kv_f16) {
                    bn_half *kd = (bn_half *)(c->k_cache + cell) + g * hd, *vd = (bn_half *)(c->v_cache + cell) + g * hd;
                    for (int64_t i = 0; i < hd; i++) {
                        kd[i] = bn_fp32_to_fp16(kr[i]);
                        vd[i] = bn_fp32_to_fp16(vr[i]);
                    }
                } else {
                    memcpy(c->k_cache + cell + (size_t)(g * hd) * 4, kr, (size_t)hd * 4);
                    memcpy(c->v_cache + cell + (size_t)(g * hd) * 4, vr, (size_t)hd * 4);
                }
            }
        }
        /* attention: (token, head) pairs */
        {
            const attn_args a = {c->q, c->k_cache + lay, c->v_cache + lay, c->kv_f16, 0,
                                 T, H, Hkv, hd, c->n_kv, c->positions, c->kv_pos, c->kv_stride, m->kq_scale, c->attn,
                                 c->dot, c->axpy, 0, 0, 0};
            int64_t p0, p1;
            if (T == 1) { /* the query heads of this thread's kv heads: their cells are ours */
                p0 = g0 * group;
                p1 = g1 * group;
            } else {
                bn_barrier_wait(&c->bar, nth);
                const int64_t chunk = (T * H + nth - 1) / nth;
                p0 = chunk * ith < T * H ? chunk * ith : T * H;
                p1 = p0 + chunk < T * H ? p0 + chunk : T * H;
            }
            float *qr = scratch + attn_n;
            for (int64_t p = p0; p < p1; p++) {
                const int64_t t = p / H, hh = p % H;
                bn_rope(c->q + p * hd, qr, 1, 1, hd, c->cos_t + t * half, c->sin_t + t * half, m->rope_dims,
                        m->rope_mode);
                attn_one_q(&a, t, hh, qr, scratch);
            }
        }
        bn_barrier_wait(&c->bar, nth);
        /* attn_sub_norm; wo */
        if (L->attn_sub_norm) bn_rms_norm(c->attn, L->attn_sub_norm, h, T, qw, m->eps);
        else memcpy(h, c->attn, sizeof(float) * (size_t)(T * qw));
        mm_group(c, mm + MM_O, lins + MM_O, 1, ith, nth);
        bn_barrier_wait(&c->bar, nth);
        /* residual, ffn_norm; gate, up */
        for (int64_t i = 0; i < T * D; i++) x[i] = x[i] + c->o[i];
        if (il == m->n_layer - 1 && c->n_out < T) { /* the caller gets the FFN input of every row */
            if (ith == 0) memcpy(c->x, x, sizeof(float) * (size_t)(T * D));
            if (c->n_out == 0) break;
        }
        bn_rms_norm(x, L->ffn_norm, h, T, D, m->eps);
        mm_group(c, mm + MM_GATE, lins + MM_GATE, 2, ith, nth);
        bn_barrier_wait(&c->bar, nth);
        /* gated activation, ffn_sub_norm; down */
        if (m->ffn_relu2) bn_relu2_glu(c->gate, c->up, act, T * F);
        else bn_swiglu(c->gate, c->up, act, T * F);
        if (L->ffn_sub_norm) bn_rms_norm(act, L->ffn_sub_norm, act, T, F, m->eps);
        mm_group(c, mm + MM_DOWN, lins + MM_DOWN, 1, ith, nth);
        bn_barrier_wait(&c->bar, nth);
        /* residual */
        for (int64_t i = 0; i < T * D; i++) x[i] = x[i] + c->o[i];
    }
    if (ith != 0) return;
    if (c->n_out == T) memcpy(c->x, x, sizeof(float) * (size_t)(T * D));
    if (c->out && c->n_out > 0) memcpy(c->out, x + (T - c->n_out) * D, sizeof(float) * (size_t)(c->n_out * D));
}

/* a layer's matmul: the right shape, and a type the mode's kernels handle */
static int linear_ok(const bn_linear *l, int64_t n_out, int64_t n_in, int mode) {
    if (!l->w || l->n_out != n_out || l->n_in != n_in) return 0;
    if (mode == 1) {
        bn_peer_mm probe;
        return bn_peer_supported(l->type) && bn_peer_mm_setup(&probe, l->type, NULL, n_out, n_in, 1, NULL) == 0;
    }
    bn_mm probe;
    return bn_mm_setup(&probe, l->type, l->w, n_out, n_in, NULL, 1, NULL) == 0;
}

static int model_ok(const bn_model *m, int64_t n_kv) {
    const int64_t D = m->n_embd, H = m->n_head, Hkv = m->n_head_kv, hd = m->head_dim, F = m->n_ff;
    const int64_t qw = H * hd, kw = Hkv * hd;
    if (m->n_layer < 0 || D <= 0 || F <= 0 || !attn_shape_ok(1, H, Hkv, hd, n_kv) || m->rope_dims < 0
        || m->rope_dims % 2 || m->rope_dims > hd || (m->rope_mode != 0 && m->rope_mode != 2))
        return 0;
    if (m->mode == 1 && (m->rope.n_dims != m->rope_dims || m->rope.mode != m->rope_mode || m->rope_dims > 1024))
        return 0;
    for (int il = 0; il < m->n_layer; il++) {
        const bn_layer *L = &m->layers[il];
        if (!L->attn_norm || !L->ffn_norm || !linear_ok(&L->wq, qw, D, m->mode) || !linear_ok(&L->wk, kw, D, m->mode)
            || !linear_ok(&L->wv, kw, D, m->mode) || !linear_ok(&L->wo, D, qw, m->mode)
            || !linear_ok(&L->gate, F, D, m->mode) || !linear_ok(&L->up, F, D, m->mode)
            || !linear_ok(&L->down, D, F, m->mode))
            return 0;
    }
    return 1;
}

int bn_forward_tail(const bn_model *m, float *x, int64_t T, int n_threads) {
    if (!model_ok(m, 0) || m->mode != 1) return -2;
    return bn_peer_forward_tail(m, x, T, n_threads);
}

int bn_forward(const bn_model *m, float *x, int64_t T, const int64_t *positions, const int64_t *cells,
               void *k_cache, void *v_cache, int kv_f16, int64_t n_ctx, const int64_t *kv_pos,
               int64_t kv_stride, int64_t n_kv, const float *cos_t, const float *sin_t, int n_threads,
               int64_t n_out, float *out) {
    const int64_t D = m->n_embd, H = m->n_head, Hkv = m->n_head_kv, hd = m->head_dim, F = m->n_ff;
    if (!model_ok(m, n_kv) || T < 0 || n_kv > n_ctx || n_out < 0 || n_out > T || (n_out > 0 && !out)
        || (kv_stride != 0 && kv_stride != n_kv))
        return -2;
    if (!cells) cells = positions;
    for (int64_t t = 0; t < T; t++)
        if (cells[t] < 0 || cells[t] >= n_ctx) return -2;
    if (T == 0) return 0;
    if (m->mode == 1)
        return bn_peer_forward(m, x, T, positions, cells, k_cache, v_cache, kv_f16, n_ctx, kv_pos, kv_stride, n_kv,
                               n_threads, n_out, out);
    const int64_t qw = H * hd, kw = Hkv * hd, wmax = D > qw ? D : qw;
    fwd_ctx c;
    memset(&c, 0, sizeof(c));
    int nth = n_threads < 1 ? 1 : n_threads;
    if (nth > bn_max_threads()) nth = bn_max_threads();
    const size_t shared_n = (size_t)T * (size_t)(2 * qw + 2 * kw + D + 2 * F);
    size_t priv = sizeof(float) * ((size_t)T * (size_t)(D + wmax + F) + (size_t)(((bn_peer_attn_scratch(n_kv, hd) + hd + 15) / 16) * 16));
    priv = (priv + 63) & ~(size_t)63;
    float *shared = (float *)malloc(sizeof(float) * shared_n + 64);
    uint8_t *privs = (uint8_t *)malloc(priv * (size_t)nth + 64);
    if (!shared || !privs) {
        free(shared);
        free(privs);
        return -3;
    }
    c.m = m;
    c.x = x;
    c.out = out;
    c.T = T;
    c.n_out = n_out;
    c.positions = positions;
    c.cells = cells;
    c.kv_pos = kv_pos;
    c.kv_stride = kv_stride;
    c.k_cache = (uint8_t *)k_cache;
    c.v_cache = (uint8_t *)v_cache;
    c.kv_f16 = kv_f16 != 0;
    c.n_ctx = n_ctx;
    c.n_kv = n_kv;
    c.cos_t = cos_t;
    c.sin_t = sin_t;
    float *p = shared;
    c.q = p; p += T * qw;
    c.k = p; p += T * kw;
    c.v = p; p += T * kw;
    c.attn = p; p += T * qw;
    c.o = p; p += T * D;
    c.gate = p; p += T * F;
    c.up = p;
    c.priv = privs;
    c.priv_stride = priv;
    pick_attn(&c.dot, &c.axpy);
    bn_barrier_init(&c.bar);
    if (nth > 1) bn_parallel(fwd_task, &c, nth);
    else fwd_task(&c, 0, 1);
    bn_barrier_destroy(&c.bar);
    free(shared);
    free(privs);
    return c.failed ? -3 : 0;
}
