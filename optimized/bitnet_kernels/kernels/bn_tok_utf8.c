/* bn_tok_utf8.c: code points for the tokenizers: llama.cpp's Unicode flag table, lenient
 * UTF-8 decoding, encoding, GPT-2's byte <-> character map, and the live-handle count.
 * (Overview of the tokenizer files: bn_tok_internal.h.)
 */
#include "bn_tok_internal.h"

uint16_t *bn_tok_flags;
uint16_t bn_tok_b2u[256];
int16_t bn_tok_u2b[324];

static int64_t g_live; /* handles alive */
static int g_bytemap_ready;

void bn_tok_live_add(int64_t d) {
#if defined(__GNUC__) || defined(__clang__)
    __atomic_fetch_add(&g_live, d, __ATOMIC_RELAXED);
#else
    g_live += d;
#endif
}

int64_t bn_tok_live_handles(void) { return g_live; }

int bn_tok_set_unicode(const uint16_t *flags, int64_t n) {
    if (!flags || n != NCPT) return BN_TOK_EARG;
    if (!bn_tok_flags) {
        uint16_t *t = (uint16_t *)malloc(sizeof(uint16_t) * NCPT);
        if (!t) return BN_TOK_ENOMEM;
        memcpy(t, flags, sizeof(uint16_t) * NCPT);
        bn_tok_flags = t;
    } else {
        memcpy(bn_tok_flags, flags, sizeof(uint16_t) * NCPT);
    }
    return 0;
}

int64_t bn_tok_decode_lenient(const uint8_t *s, int64_t n, uint32_t *out) {
    int64_t i = 0, k = 0;
    while (i < n) {
        uint8_t b0 = s[i];
        if (!(b0 & 0x80)) {
            out[k++] = b0;
            i += 1;
            continue;
        }
        if (!(b0 & 0x40)) goto bad;
        if (!(b0 & 0x20)) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) goto bad;
            out[k++] = ((uint32_t)(b0 & 0x1F) << 6) | (s[i + 1] & 0x3F);
            i += 2;
            continue;
        }
        if (!(b0 & 0x10)) {
            if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) goto bad;
            out[k++] = ((uint32_t)(b0 & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) |
                       (s[i + 2] & 0x3F);
            i += 3;
            continue;
        }
        if (!(b0 & 0x08)) {
            if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80)
                goto bad;
            out[k++] = ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) |
                       ((uint32_t)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
            i += 4;
            continue;
        }
    bad:
        out[k++] = 0xFFFD;
        i += 1;
    }
    return k;
}

int bn_tok_encode_utf8(uint32_t c, uint8_t *o) {
    if (c <= 0x7F) {
        o[0] = (uint8_t)c;
        return 1;
    }
    if (c <= 0x7FF) {
        o[0] = (uint8_t)(0xC0 | (c >> 6));
        o[1] = (uint8_t)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c <= 0xFFFF) {
        o[0] = (uint8_t)(0xE0 | (c >> 12));
        o[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (c >> 18));
    o[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

int bn_tok_utf8_offsets(const uint8_t *blob, int64_t n_bytes, const int64_t *n_cpts, int64_t n,
                        int64_t *offs) {
    int64_t i, j, pos = 0;
    offs[0] = 0;
    for (i = 0; i < n; i++) {
        for (j = 0; j < n_cpts[i]; j++) {
            if (pos >= n_bytes) return -1;
            pos += bn_tok_utf8_len(blob[pos]);
        }
        if (pos > n_bytes) return -1;
        offs[i + 1] = pos;
    }
    return pos == n_bytes ? 0 : -1;
}

void bn_tok_bytemap_init(void) {
    int b, n = 0;
    if (g_bytemap_ready) return; /* idempotent: concurrent first calls write the same values */
    for (b = 0; b < 324; b++) bn_tok_u2b[b] = -1;
    for (b = 0; b < 256; b++) {
        int keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        bn_tok_b2u[b] = (uint16_t)(keep ? b : 256 + n++);
        bn_tok_u2b[bn_tok_b2u[b]] = (int16_t)b;
    }
    g_bytemap_ready = 1;
}
