/* bitnet_ffi_ggml.h - part of bitnet_ffi.h: ggml's own headers when available, else the few
 * ggml types and functions llama.h needs (see bitnet_ffi.h). Include bitnet_ffi.h, not this. */
#ifndef BITNET_FFI_GGML_H
#define BITNET_FFI_GGML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if !defined(BITNET_FFI_NO_GGML_H) && !defined(GGML_FILE_MAGIC) && defined(__has_include)
#  if __has_include("ggml.h")
#    include "ggml.h"
#  endif
#endif
#ifdef GGML_FILE_MAGIC /* ggml.h is here: the rest of what llama.h includes too */
#  include "ggml-cpu.h"
#  include "ggml-backend.h"
#  include "ggml-opt.h"
#  include "gguf.h"
#else
#define BITNET_FFI_OWN_GGML_DECLS 1
#define GGML_DEFAULT_N_THREADS 4
#define GGML_ROPE_TYPE_NORMAL 0
#define GGML_ROPE_TYPE_NEOX 2
#define GGML_ROPE_TYPE_MROPE 8
#define GGML_ROPE_TYPE_VISION 24
#define GGML_ROPE_TYPE_IMROPE 40
#define GGML_MROPE_SECTIONS 4
#ifdef __cplusplus
extern "C" {
#endif
enum ggml_type {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_IQ2_XXS = 16,
    GGML_TYPE_IQ2_XS = 17,
    GGML_TYPE_IQ3_XXS = 18,
    GGML_TYPE_IQ1_S = 19,
    GGML_TYPE_IQ4_NL = 20,
    GGML_TYPE_IQ3_S = 21,
    GGML_TYPE_IQ2_S = 22,
    GGML_TYPE_IQ4_XS = 23,
    GGML_TYPE_I8 = 24,
    GGML_TYPE_I16 = 25,
    GGML_TYPE_I32 = 26,
    GGML_TYPE_I64 = 27,
    GGML_TYPE_F64 = 28,
    GGML_TYPE_IQ1_M = 29,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_TQ1_0 = 34,
    GGML_TYPE_TQ2_0 = 35,
    GGML_TYPE_MXFP4 = 39,
    GGML_TYPE_NVFP4 = 40,
    GGML_TYPE_Q1_0 = 41,
    GGML_TYPE_Q2_0 = 42,
    GGML_TYPE_COUNT = 43
};
enum ggml_log_level {
    GGML_LOG_LEVEL_NONE = 0,
    GGML_LOG_LEVEL_DEBUG = 1,
    GGML_LOG_LEVEL_INFO = 2,
    GGML_LOG_LEVEL_WARN = 3,
    GGML_LOG_LEVEL_ERROR = 4,
    GGML_LOG_LEVEL_CONT = 5
};
enum ggml_numa_strategy {
    GGML_NUMA_STRATEGY_DISABLED = 0,
    GGML_NUMA_STRATEGY_DISTRIBUTE = 1,
    GGML_NUMA_STRATEGY_ISOLATE = 2,
    GGML_NUMA_STRATEGY_NUMACTL = 3,
    GGML_NUMA_STRATEGY_MIRROR = 4,
    GGML_NUMA_STRATEGY_COUNT
};
enum ggml_opt_optimizer_type {
    GGML_OPT_OPTIMIZER_TYPE_ADAMW,
    GGML_OPT_OPTIMIZER_TYPE_SGD,
    GGML_OPT_OPTIMIZER_TYPE_COUNT
};
struct ggml_tensor;
struct ggml_context;
struct ggml_cgraph;
struct gguf_context;
struct ggml_opt_optimizer_params;
typedef struct ggml_threadpool *ggml_threadpool_t;
typedef struct ggml_backend_device *ggml_backend_dev_t;
typedef struct ggml_backend_buffer_type *ggml_backend_buffer_type_t;
typedef struct ggml_opt_dataset *ggml_opt_dataset_t;
typedef struct ggml_opt_context *ggml_opt_context_t;
typedef struct ggml_opt_result *ggml_opt_result_t;
typedef void (*ggml_log_callback)(enum ggml_log_level level, const char *text, void *user_data);
typedef bool (*ggml_abort_callback)(void *data);
typedef bool (*ggml_backend_sched_eval_callback)(struct ggml_tensor *t, bool ask, void *user_data);
typedef struct ggml_opt_optimizer_params (*ggml_opt_get_optimizer_params)(void *userdata);
typedef void (*ggml_opt_epoch_callback)(bool train, ggml_opt_context_t opt_ctx,
                                        ggml_opt_dataset_t dataset, ggml_opt_result_t result,
                                        int64_t ibatch, int64_t ibatch_max, int64_t t_start_us);
/* exported by libbitnet_ffi, as ggml defines them: a monotonic clock, and ggml_abort (prints
 * "file:line: message" on stderr, then abort()) behind the macros llama.cpp's examples use */
void ggml_time_init(void);
int64_t ggml_time_ms(void);
int64_t ggml_time_us(void);
#ifdef __GNUC__
__attribute__((noreturn, format(printf, 3, 4)))
#endif
void ggml_abort(const char *file, int line, const char *fmt, ...);
#define GGML_UNUSED(x) (void)(x)
#define GGML_ABORT(...) ggml_abort(__FILE__, __LINE__, __VA_ARGS__)
#define GGML_ASSERT(x) if (!(x)) GGML_ABORT("GGML_ASSERT(%s) failed", #x)
#ifdef __cplusplus
}
#endif
#endif /* ggml */

#endif /* BITNET_FFI_GGML_H */
