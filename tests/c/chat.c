/* llama_chat_apply_template and llama_chat_builtin_templates, the same source for libllama
 * and libbitnet_ffi: every template of a file against a few conversations.
 * usage: chat TEMPLATES_FILE   (templates separated by a line "<<<END>>>")
 * prints "builtin <n> names...", then "<template#> <conversation#> <add_ass> <length> <hex of
 * the prompt>" and, for the first buffer, what a too-small buffer got (strncpy semantics). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef USE_BITNET
#include "bitnet_ffi.h"
#else
#include "llama.h"
#endif

static const struct llama_chat_message CONV0[] = {
    {"system", "  You are helpful. "}, {"user", " Hi there\n"}, {"assistant", " Hello! "},
    {"user", "Name a colour."}};
static const struct llama_chat_message CONV1[] = {{"user", "One"}};
static const struct llama_chat_message CONV2[] = {
    {"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"tool", "t"}, {"assistant_tool_call", "x"}};
static const struct llama_chat_message CONV3[] = {
    {"system", "sys"}, {"user", "\xe4\xbd\xa0\xe5\xa5\xbd"}, {"assistant", "a1"}};
static const struct llama_chat_message *CONVS[] = {CONV0, CONV1, CONV2, CONV3};
static const size_t CONV_N[] = {4, 1, 5, 3};

static void hex(const char *s, int32_t n) {
    for (int32_t i = 0; i < n; i++) printf("%02x", (unsigned char)s[i]);
}

static void apply(int idx, const char *tmpl) {
    for (int c = 0; c < 4; c++) {
        for (int add = 0; add < 2; add++) {
            char small[16];
            memset(small, 'Z', sizeof small);
            int32_t n = llama_chat_apply_template(tmpl, CONVS[c], CONV_N[c], add, small, 16);
            printf("%d %d %d %d ", idx, c, add, n);
            if (n > 0) {
                char *buf = (char *)malloc((size_t)n + 1);
                int32_t m = llama_chat_apply_template(tmpl, CONVS[c], CONV_N[c], add, buf, n + 1);
                if (m != n) printf("LENGTH-CHANGED ");
                hex(buf, n);
                printf(" small ");
                hex(small, 16);
                free(buf);
            }
            printf("\n");
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *names[128];
    int32_t n = llama_chat_builtin_templates(names, 128);
    printf("builtin %d", n);
    for (int32_t i = 0; i < n && i < 128; i++) printf(" %s", names[i]);
    printf("\n");
    apply(-1, NULL); /* NULL: chatml */
    for (int32_t i = 0; i < n && i < 128; i++) apply(1000 + i, names[i]);
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) return 1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *all = (char *)malloc((size_t)size + 1);
    if (fread(all, 1, (size_t)size, f) != (size_t)size) return 1;
    all[size] = '\0';
    fclose(f);
    int idx = 0;
    for (char *p = all; p != NULL && *p;) {
        char *end = strstr(p, "\n<<<END>>>\n");
        if (end != NULL) *end = '\0';
        apply(idx++, p);
        p = end != NULL ? end + 11 : NULL;
    }
    free(all);
    return 0;
}
