/* The embedded interpreter's life cycle, the last error, logging and the C-only helpers of
 * libbitnet_ffi.
 *
 * The interpreter starts on the first call, pinned to the environment the library is installed
 * in: the library finds itself (dladdr), and when it sits in <prefix>/lib/pythonX.Y/site-packages
 * the interpreter runs as <prefix>/bin/python3 (so a virtual environment's pyvenv.cfg applies);
 * otherwise (a build inside a source tree) as the interpreter that built it. It ignores PYTHON*
 * variables and the user site directory, installs no signal handlers and leaves the process's
 * locale alone, so programs behave the same under cron, systemd or `env -i`. It is finalized by
 * llama_backend_free() and at exit.
 */
#define _GNU_SOURCE 1 /* as pyconfig.h defines it (3.8 redefines it without a guard) */
#include <Python.h>

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bitnet_ffi_internal.h"

#ifndef BITNET_FFI_BUILD_PYTHON
#define BITNET_FFI_BUILD_PYTHON ""
#endif

/* ---- last error (per thread) ---- */

#define MESSAGE_MAX 2048
static __thread int32_t tl_code;
static __thread char tl_message[MESSAGE_MAX];

LLAMA_API int32_t bitnet_last_error(void) { return tl_code; }

LLAMA_API const char *bitnet_last_error_message(void) { return tl_message; }

void bitnet__set_error(int32_t code, const char *message) {
    tl_code = code;
    if (message == NULL) message = "";
    snprintf(tl_message, sizeof tl_message, "%s", message);
}

void bitnet__set_errorf(int32_t code, const char *fmt, ...) {
    va_list ap;
    tl_code = code;
    va_start(ap, fmt);
    vsnprintf(tl_message, sizeof tl_message, fmt, ap);
    va_end(ap);
}

/* ---- logging ---- */

static ggml_log_callback log_callback;
static void *log_user_data;

LLAMA_API void llama_log_set(ggml_log_callback callback, void *user_data) {
    log_callback = callback;
    log_user_data = user_data;
}

LLAMA_API void llama_log_get(ggml_log_callback *callback, void **user_data) {
    if (callback) *callback = log_callback;
    if (user_data) *user_data = log_user_data;
}

void bitnet__log(int32_t level, const char *text) {
    if (text == NULL) return;
    if (log_callback != NULL) {
        log_callback((enum ggml_log_level)level, text, log_user_data);
    } else {
        fputs(text, stderr);
        fflush(stderr);
    }
}

/* ---- where this library and its Python live ---- */

static char import_root[PATH_MAX];
static char program[PATH_MAX];
static char start_cause[1024];

const char *bitnet__import_root(void) { return import_root; }

void bitnet__start_failed(const char *cause) {
    snprintf(start_cause, sizeof start_cause, "%s", cause ? cause : "unknown error");
}

static void dirname_inplace(char *path) {
    char *slash = strrchr(path, '/');
    if (slash == NULL) {
        strcpy(path, ".");
    } else if (slash == path) {
        path[1] = '\0';
    } else {
        *slash = '\0';
    }
}

static int is_file(const char *path) { return access(path, X_OK) == 0; }

/* <root>/bitnet/ffi/lib/libbitnet_ffi.so -> root; the interpreter of root's environment. */
static void locate(void) {
    Dl_info info;
    char self[PATH_MAX];
    import_root[0] = program[0] = '\0';
    if (dladdr((void *)&locate, &info) == 0 || info.dli_fname == NULL ||
        realpath(info.dli_fname, self) == NULL) {
        snprintf(program, sizeof program, "%s", BITNET_FFI_BUILD_PYTHON);
        return;
    }
    for (int up = 0; up < 4; up++) dirname_inplace(self); /* lib, ffi, bitnet, root */
    snprintf(import_root, sizeof import_root, "%s", self);
    /* root = <prefix>/lib/pythonX.Y/site-packages (or dist-packages): prefix/bin/python3 */
    const char *base = strrchr(self, '/');
    if (base != NULL && (strcmp(base, "/site-packages") == 0 || strcmp(base, "/dist-packages") == 0)) {
        char prefix[PATH_MAX];
        snprintf(prefix, sizeof prefix, "%s", self);
        for (int up = 0; up < 3; up++) dirname_inplace(prefix);
        char candidate[PATH_MAX + 32];
        snprintf(candidate, sizeof candidate, "%s/bin/python3", prefix);
        if (strlen(candidate) < sizeof program && is_file(candidate)) {
            snprintf(program, sizeof program, "%s", candidate);
            return;
        }
    }
    snprintf(program, sizeof program, "%s", BITNET_FFI_BUILD_PYTHON);
}

/* ---- LeakSanitizer: the interpreter's memory is not the program's ----
 * CPython does not free everything when it is finalized (extension modules such as numpy keep
 * static objects), so under LeakSanitizer the allocations made while Python code runs are
 * marked as intentionally retained (__lsan_disable/__lsan_enable, weak: no-ops without
 * ASan). What the program owns - batches, its samplers, the C parts of handles - stays checked
 * (bitnet__py_end around those allocations: see sampler.c). */
extern void __lsan_disable(void) __attribute__((weak));
extern void __lsan_enable(void) __attribute__((weak));

void bitnet__py_begin(void) {
    if (__lsan_disable) __lsan_disable();
}

void bitnet__py_end(void) {
    if (__lsan_enable) __lsan_enable();
}

/* ---- interpreter life cycle ---- */

enum { PY_NEW = 0, PY_READY = 1, PY_FAILED = 2, PY_DONE = 3 };
static int py_state = PY_NEW;
static int py_owned; /* we initialized it (a host that embeds Python keeps its own) */
static pthread_mutex_t py_lock = PTHREAD_MUTEX_INITIALIZER;

static int init_interpreter(void) {
    PyStatus status;
    PyPreConfig pre;
    PyPreConfig_InitIsolatedConfig(&pre); /* leaves LC_CTYPE and the environment alone */
    pre.utf8_mode = 1;
    status = Py_PreInitialize(&pre);
    if (PyStatus_Exception(status)) goto fail;

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config); /* no PYTHON* variables, no user site, no signals */
    config.site_import = 1;
    config.install_signal_handlers = 0;
    config.write_bytecode = 0;
    if (program[0] != '\0') {
        status = PyConfig_SetBytesString(&config, &config.program_name, program);
        if (PyStatus_Exception(status)) {
            PyConfig_Clear(&config);
            goto fail;
        }
    }
    status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) goto fail;
    /* this thread is Python's main thread: let `threading` know it before any program thread
     * imports it (signal handlers stay the program's: Python code never installs any) */
    PyObject *threading = PyImport_ImportModule("threading");
    if (threading == NULL) PyErr_Clear();
    Py_XDECREF(threading);
    return 0;
fail:
    snprintf(start_cause, sizeof start_cause, "%s%s%s", status.func ? status.func : "",
             status.func ? ": " : "", status.err_msg ? status.err_msg : "initialization failed");
    return -1;
}

static void at_exit(void);

/* The interpreter lives on a thread of its own: it initializes Python, then waits (without
 * the GIL) until finalization is asked for, and finalizes it. Python's "main thread" is thus
 * alive whichever thread of the program calls first, calls later or exits (finalizing from
 * another thread than the one that initialized would wait forever in threading's shutdown). */
static pthread_t py_thread;
static pthread_mutex_t th_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t th_cond = PTHREAD_COND_INITIALIZER;
enum { TH_STARTING = 0, TH_RUNNING = 1, TH_FINALIZE = 2, TH_DONE = 3 };
static int th_phase;
static int th_init_rc;

static void th_set(int phase) {
    pthread_mutex_lock(&th_lock);
    th_phase = phase;
    pthread_cond_broadcast(&th_cond);
    pthread_mutex_unlock(&th_lock);
}

static void th_wait(int phase) {
    pthread_mutex_lock(&th_lock);
    while (th_phase < phase) pthread_cond_wait(&th_cond, &th_lock);
    pthread_mutex_unlock(&th_lock);
}

static void *interpreter_thread(void *arg) {
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the program's */
    bitnet__py_begin();
    th_init_rc = init_interpreter();
    PyThreadState *state = th_init_rc == 0 ? PyEval_SaveThread() : NULL;
    bitnet__py_end();
    th_set(TH_RUNNING);
    th_wait(TH_FINALIZE);
    if (state != NULL) {
        bitnet__py_begin();
        PyEval_RestoreThread(state);
        Py_FinalizeEx();
        bitnet__py_end();
    }
    th_set(TH_DONE);
    return NULL;
}

/* The pending Python exception as one line ("Type: message"); clears it. */
static void exception_line(char *out, size_t size) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *text = value ? PyObject_Str(value) : NULL;
    const char *msg = text ? PyUnicode_AsUTF8(text) : NULL;
    snprintf(out, size, "%s: %s", type ? ((PyTypeObject *)type)->tp_name : "error", msg ? msg : "");
    for (char *c = out; *c; c++) {
        if (*c == '\n') *c = ' ';
    }
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
}

/* Put the package root first on sys.path and check that cffi's backend imports (else cffi
 * would print a page about it): 0, or -1 with the cause in start_cause. */
static int prepare_path(void) {
    PyGILState_STATE gil = PyGILState_Ensure();
    int rc = 0;
    PyObject *path = PySys_GetObject("path"); /* borrowed */
    PyObject *root = import_root[0] ? PyUnicode_DecodeFSDefault(import_root) : NULL;
    if (path != NULL && root != NULL && PySequence_Contains(path, root) == 0) {
        PyList_Insert(path, 0, root);
    }
    Py_XDECREF(root);
    PyObject *backend = PyImport_ImportModule("_cffi_backend");
    if (backend == NULL) {
        exception_line(start_cause, sizeof start_cause);
        rc = -1;
    }
    Py_XDECREF(backend);
    PyErr_Clear();
    PyGILState_Release(gil);
    return rc;
}

static int start(void) {
    pthread_mutex_lock(&py_lock);
    if (py_state != PY_NEW) {
        int s = py_state;
        pthread_mutex_unlock(&py_lock);
        return s;
    }
    locate();
    start_cause[0] = '\0';
    bitnet__py_begin();
    int ok = 1;
    if (!Py_IsInitialized()) {
        if (pthread_create(&py_thread, NULL, interpreter_thread, NULL) != 0) {
            snprintf(start_cause, sizeof start_cause, "%s", "cannot create the interpreter's thread");
            ok = 0;
        } else {
            th_wait(TH_RUNNING);
            py_owned = 1;
            ok = th_init_rc == 0;
        }
    }
    if (ok && prepare_path() != 0) ok = 0;
    if (ok && (bitnet__cffi_start() != 0 || start_cause[0] != '\0')) {
        if (start_cause[0] == '\0') snprintf(start_cause, sizeof start_cause, "%s", "cffi start failed");
        ok = 0;
    }
    if (ok) {
        __atomic_store_n(&py_state, PY_READY, __ATOMIC_RELEASE);
        atexit(at_exit);
    } else {
        fprintf(stderr, "libbitnet_ffi: cannot start the embedded Python (%s, package root %s): %s\n",
                program[0] ? program : "default interpreter", import_root[0] ? import_root : "?",
                start_cause);
        fflush(stderr);
        __atomic_store_n(&py_state, PY_FAILED, __ATOMIC_RELEASE);
    }
    bitnet__py_end();
    int s = py_state;
    pthread_mutex_unlock(&py_lock);
    return s;
}

int bitnet__enter(const char *fn) {
    int s = __atomic_load_n(&py_state, __ATOMIC_ACQUIRE);
    if (s == PY_READY) return 1;
    if (s == PY_NEW) s = start();
    if (s == PY_READY) return 1;
    if (s == PY_DONE) {
        bitnet__set_errorf(BITNET_ERR_GENERIC, "%s: the library was shut down by llama_backend_free()", fn);
    } else {
        bitnet__set_errorf(BITNET_ERR_GENERIC, "%s: the embedded Python interpreter could not start: %s",
                           fn, start_cause);
    }
    return 0;
}

/* Free every handle, then finalize the interpreter (if this library started it). */
static void finalize(void) {
    pthread_mutex_lock(&py_lock);
    if (py_state == PY_READY) {
        bitnet__py_begin();
        bitnet__py_shutdown();
        bitnet__py_end();
    }
    if (py_owned) { /* the interpreter's thread finalizes it (or, if it failed, just ends) */
        th_set(TH_FINALIZE);
        th_wait(TH_DONE);
        pthread_join(py_thread, NULL);
        py_owned = 0;
    }
    if (py_state == PY_READY || py_state == PY_NEW) py_state = PY_DONE;
    pthread_mutex_unlock(&py_lock);
}

static void at_exit(void) { finalize(); }

LLAMA_API void llama_backend_init(void) {
    if (bitnet__enter("llama_backend_init")) bitnet__set_error(0, NULL);
}

LLAMA_API void llama_backend_free(void) {
    finalize();
    bitnet__set_error(0, NULL);
}

/* ---- time, constants, no-ops ---- */

LLAMA_API void ggml_time_init(void) {}

LLAMA_API int64_t ggml_time_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + (int64_t)ts.tv_nsec / 1000;
}

LLAMA_API int64_t ggml_time_ms(void) { return ggml_time_us() / 1000; }

LLAMA_API void ggml_abort(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

LLAMA_API int64_t llama_time_us(void) { return ggml_time_us(); }

LLAMA_API const char *llama_version(void) { return BITNET_FFI_VERSION " (bitnet-compat)"; }

LLAMA_API size_t llama_max_devices(void) { return 16; }
LLAMA_API size_t llama_max_parallel_sequences(void) { return 256; }
LLAMA_API size_t llama_max_tensor_buft_overrides(void) { return 4096; }
LLAMA_API bool llama_supports_mmap(void) { return true; }
LLAMA_API bool llama_supports_mlock(void) { return false; }
LLAMA_API bool llama_supports_gpu_offload(void) { return false; }
LLAMA_API bool llama_supports_rpc(void) { return false; }

LLAMA_API void llama_numa_init(enum ggml_numa_strategy numa) {
    (void)numa;
    bitnet__set_error(0, NULL);
}

LLAMA_API void llama_attach_threadpool(struct llama_context *ctx, ggml_threadpool_t threadpool,
                                       ggml_threadpool_t threadpool_batch) {
    (void)ctx, (void)threadpool, (void)threadpool_batch;
    bitnet__set_error(0, NULL);
}

LLAMA_API void llama_detach_threadpool(struct llama_context *ctx) {
    (void)ctx;
    bitnet__set_error(0, NULL);
}

LLAMA_API bool llama_opt_param_filter_all(const struct ggml_tensor *tensor, void *userdata) {
    (void)tensor, (void)userdata;
    return true;
}
