"""The contract registry: every clause of the spec, a stable id, and the checks that prove it.

A check is a pytest node-id prefix (``file.py::test_name``, or a whole file), or a fuzz
campaign of the runner (``fuzz::tokenizers[vocab]``, ``fuzz::gguf``). A clause whose
checks did not all run and pass is never reported as passing: no checks (or none ran) is
'unproven', any failure is 'failed'. The spec is `shared/spec/COMPATIBILITY.md`; this
project's reading of it is `docs/COMPATIBILITY.md`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

GGUF = "tests/test_gguf_compatibility.py"
TOK = "tests/test_tokenizer_contracts.py"
QUANTS = "tests/test_quants.py"
ENGINE = "tests/test_reference_engine.py"
SAMPLING = "tests/test_sampling.py"
LLAMA = "tests/test_llama_compat.py"
KERNELS = "tests/test_optimized_kernels.py"
CAPI = "tests/test_api_contract.py"
LEGACY = (f"{CAPI}::test_legacy_api_program", f"{CAPI}::test_error_paths")
CAPI_SURFACE = "tests/test_capi_surface.py"
CAPI_SEQ = "tests/test_capi_sequences.py"
CAPI_EXAMPLES = "tests/test_capi_examples.py"
CAPI_RUNTIME = "tests/test_capi_runtime.py"


@dataclass(frozen=True)
class Contract:
    id: str
    section: str
    clause: str
    checks: Tuple[str, ...] = ()


FUZZ_TOKENIZERS = "fuzz::tokenizers"  # the runner's budgeted campaign, one node per vocabulary


def _vocab_checks(vocab: str) -> Tuple[str, str, str]:
    """A vocabulary's llama.cpp test vectors and its differential fuzz against llama.cpp
    (the pytest property and the runner's time-budgeted campaign)."""
    return (f"{TOK}::test_llamacpp_vectors[{vocab}]", f"{TOK}::test_differential_vs_llamacpp[{vocab}]",
            f"{FUZZ_TOKENIZERS}[{vocab}]")


def _c(id: str, section: str, clause: str, *checks: str) -> Contract:
    return Contract(id, section, clause, tuple(checks))


CONTRACTS: Sequence[Contract] = (
    # C/C++ FFI API
    _c("capi.llama_load_model_from_file", "C API", "locked signature, full support", *LEGACY),
    _c("capi.llama_free_model", "C API", "locked signature, full support", *LEGACY),
    _c("capi.llama_new_context_with_model", "C API", "locked signature, full support", *LEGACY),
    _c("capi.llama_free", "C API", "locked signature, full support", *LEGACY),
    _c("capi.llama_tokenize", "C API", "locked signature, full support", *LEGACY),
    _c("capi.llama_eval", "C API", "locked signature, full support", *LEGACY),
    _c("capi.llama_get_logits", "C API", "locked signature, full support", *LEGACY,
       f"{CAPI}::test_logits_rows"),
    _c("capi.llama_get_embeddings", "C API", "truth table: planned (delivered: llama_get_embeddings"
       "/_ith equal to the Python engine and within NMSE of libllama)",
       f"{CAPI}::test_dual_build_same_greedy_continuation",
       f"{CAPI}::test_dual_build_embeddings_equal_python_engine"),
    _c("capi.llama_batch", "C API", "truth table: llama_batch_* planned (delivered: batch_init/free/"
       "get_one, llama_batch_ext_* / llama_process, llama_decode with per-token logits flags and "
       "several sequences per batch)",
       f"{CAPI}::test_dual_build_same_greedy_continuation", f"{CAPI}::test_current_api_program",
       f"{CAPI_SEQ}::test_two_sequences_in_one_batch_equal_each_alone",
       f"{CAPI_SEQ}::test_sequences_and_states_as_libllama"),
    _c("capi.llama_kv_cache", "C API", "truth table: llama_kv_cache_* planned (delivered: kv_cache_"
       "* and llama_memory_* per sequence, llama_state_* save / restore)",
       f"{CAPI}::test_dual_build_same_greedy_continuation",
       f"{CAPI_SEQ}::test_state_save_restore_continues_identically",
       f"{CAPI_SEQ}::test_sequences_and_states_as_libllama"),
    _c("capi.llama_grammar", "C API", "truth table: not planned (constraints API instead; the "
       "grammar samplers return NULL as documented)",
       f"{CAPI_SURFACE}::test_unsupported_functions_return_the_documented_value"),
    _c("capi.llama_sampling", "C API", "truth table: llama_sampling_* full support",
       f"{CAPI}::test_dual_build_samplers_identical", f"{CAPI}::test_legacy_samplers_match_llamacpp",
       f"{CAPI}::test_legacy_seeded_sampling_is_std_mt19937"),
    _c("capi.llama_model_quantize", "C API", "truth table: planned (delivered: same params struct, "
       "defaults and return codes as llama.cpp)", f"{CAPI}::test_quantize_from_c_equals_cli",
       f"{CAPI}::test_quantize_default_params_match_llamacpp"),
    _c("capi.header", "C API", "bitnet_ffi.h's locked declarations equal the spec's text; the same "
       "program builds against llama.h + libllama and bitnet_ffi.h + libbitnet_ffi",
       f"{CAPI}::test_header_declarations_match_spec", f"{CAPI}::test_dual_build_same_greedy_continuation",
       f"{CAPI}::test_legacy_greedy_32_tokens_equal_python_api",
       f"{CAPI}::test_dual_build_byte_identical_without_flash_attention"),
    _c("capi.surface", "C API", "llama.h 0.3.36's whole surface with the same types; documented "
       "failures; C99, C11 and C++11..20, both API generations; coexists with ggml.h",
       f"{CAPI_SURFACE}::test_every_llama_h_function_is_declared_with_its_type",
       f"{CAPI_SURFACE}::test_documented_failure_list_matches_the_library",
       f"{CAPI_SURFACE}::test_unsupported_functions_return_the_documented_value",
       f"{CAPI_SURFACE}::test_python_side_implements_the_rest",
       f"{CAPI_SURFACE}::test_current_and_legacy_programs_build",
       f"{CAPI_SURFACE}::test_header_coexists_with_ggml_h",
       f"{CAPI_SURFACE}::test_c99_program_on_todays_api_runs",
       f"{CAPI_SURFACE}::test_model_vocab_and_context_getters_print_what_libllama_prints",
       "tests/test_capi_chat.py::test_chat_templates_byte_identical_to_libllama"),
    _c("capi.runtime", "C API", "no hidden Python dependency: the embedded interpreter pinned to "
       "the library's environment (env -i, venvs), one-line start failures, finalized at exit "
       "(ASan/LSan clean)",
       f"{CAPI_RUNTIME}::test_program_runs_under_env_i",
       f"{CAPI_RUNTIME}::test_interpreter_that_cannot_start_says_why_in_one_line",
       f"{CAPI_RUNTIME}::test_asan_build_exits_zero_without_reports",
       f"{CAPI_RUNTIME}::test_programs_own_leaks_are_still_reported",
       f"{CAPI_RUNTIME}::test_calls_after_backend_free", f"{CAPI}::test_flags_need_no_build_tools"),
    _c("tools.quantize", "Quantize", "`bitnet quantize`: blocks byte-identical to llama.cpp's "
       "llama_model_quantize; ternary types per BitNet b1.58", "tests/test_quantize_convert.py"),
    # error codes
    _c("errors.codes", "Error codes", "0 success, -1 generic, -2 invalid UTF-8, -3 tokenization "
       "failed, 1 eval error; extensions -4..-10", f"{GGUF}::test_missing_file_has_code_minus_4",
       f"{GGUF}::test_bad_file_corpus", f"{CAPI}::test_error_paths",
       f"{CAPI}::test_header_error_codes_match_spec_table", f"{CAPI}::test_bad_inputs_under_asan"),
    # Python API
    _c("python.import", "Python API", "`from bitnet.llama_compat import Llama` is the only change",
       LLAMA, "tests/test_llama_upstream.py", "tests/test_llama_api_surface.py"),
    _c("python.signatures", "Python API", "Llama(...) parameters and methods locked",
       f"{LLAMA}::test_signatures_match_llama_cpp_python", f"{LLAMA}::test_helper_classes_match"),
    _c("python.tokenize", "Python API", "llama.tokenize(text, add_bos=True, special=True)",
       f"{LLAMA}::test_tokenize_detokenize_identical"),
    _c("python.call", "Python API", "llama(prompt, max_tokens=100, temperature=0.7)",
       f"{LLAMA}::test_greedy_completions_agree_up_to_near_ties",
       f"{LLAMA}::test_completion_dict_structure", f"{LLAMA}::test_stream_chunks_match"),
    _c("python.errors", "Python API", "errors users catch: context overflow, missing file, "
       "logprobs without logits_all, embed without embedding=True",
       f"{LLAMA}::test_missing_model_path", f"{LLAMA}::test_context_overflow_message",
       f"{LLAMA}::test_logprobs_and_embed_errors",
       f"{LLAMA}::test_exceptions_have_llama_cpp_pythons_builtin_types"),
    _c("python.json-output", "Python API", "response_format json_object and JSON schemas ($ref, "
       "anyOf, allOf, enum, pattern...) and tool-call arguments follow llama-cpp-python's grammars",
       "tests/test_json_constraint.py", f"{LLAMA}::test_forced_tool_call_identical",
       f"{LLAMA}::test_response_format_schema_identical"),
    _c("python.grammar", "Python API", "grammar= (LlamaGrammar, GBNF): llama.cpp's parser and "
       "grammar sampler, token for token",
       "tests/test_grammar.py", "tests/test_grammar_generation.py", "tests/test_grammar_engine.py"),
    _c("python.speculative", "Python API", "draft_model= (prompt lookup): greedy output of plain "
       "decoding in fewer decode calls", "tests/test_speculative.py"),
    _c("python.chat", "Python API", "chat templates render token-identical; sandboxed",
       f"{LLAMA}::test_builtin_chat_formats_render_identically",
       f"{LLAMA}::test_gguf_template_renders_token_identical",
       f"{LLAMA}::test_chat_template_injection_is_sandboxed"),
    _c("python.tools", "Python API", "tools / tool_choice / functions: chatml-function-calling, "
       "functionary and any template's forced tool calls, same dicts as llama-cpp-python",
       f"{LLAMA}::test_forced_tool_call_identical", f"{LLAMA}::test_legacy_functions_and_stream",
       f"{LLAMA}::test_chatml_function_calling_auto", f"{LLAMA}::test_function_calling_errors_match",
       f"{LLAMA}::test_functionary_plain_chat"),
    # tokenizers
    _c("tokenizer.gpt2-bpe", "Tokenizers", "GPT-2 BPE, including variants with missing metadata",
       *_vocab_checks("gpt-2"), f"{TOK}::test_missing_pre_uses_llamacpp_default_without_repair",
       f"{TOK}::test_auto_repair_keeps_tokenization"),
    _c("tokenizer.llama3-bpe", "Tokenizers", "Llama 3 BPE (128k vocabulary)", *_vocab_checks("llama-bpe")),
    _c("tokenizer.sentencepiece", "Tokenizers", "SentencePiece (Llama 1/2)", *_vocab_checks("llama-spm"),
       f"{TOK}::test_spm_and_ugm_accept_any_bytes"),
    _c("tokenizer.tiktoken", "Tokenizers", "Tiktoken (GPT-3.5/4)",
       f"{TOK}::test_tiktoken_real_text_identical", f"{TOK}::test_tiktoken_fuzz_identical"),
    _c("tokenizer.falcon", "Tokenizers", "Falcon", *_vocab_checks("falcon")),
    _c("tokenizer.all-shipped-vocabs", "Tokenizers", "every vocabulary llama.cpp ships tokenizes "
       "exactly like llama.cpp", f"{TOK}::test_llamacpp_vectors",
       f"{TOK}::test_differential_vs_llamacpp", f"{TOK}::test_round_trip", FUZZ_TOKENIZERS),
    _c("errors.invalid-utf8", "Error codes", "-2 invalid UTF-8 where llama.cpp itself fails",
       f"{TOK}::test_codepoint_past_u10ffff_is_where_llamacpp_fails",
       f"{TOK}::test_invalid_utf8_like_llamacpp"),
    _c("tokenizer.breaks-llamacpp", "Tokenizers", "gpt2 model with tokenizer.ggml.pre missing "
       "must work", f"{GGUF}::test_missing_pre_is_detected", f"{GGUF}::test_smollm2_pre_is_detected",
       f"{TOK}::test_missing_pre_tokenizes_like_the_original"),
    # GGUF fixes
    _c("gguf.fix.pre", "GGUF auto-fix", "missing tokenizer.ggml.pre for GPT-2 models",
       f"{GGUF}::test_missing_pre_is_detected", f"{GGUF}::test_smollm2_pre_is_detected",
       f"{GGUF}::test_undetectable_pre_falls_back_to_default_with_warning"),
    _c("gguf.fix.add_space_prefix", "GGUF auto-fix", "missing tokenizer.ggml.add_space_prefix",
       f"{GGUF}::test_missing_add_space_prefix_and_byte_fallback"),
    _c("gguf.fix.byte_fallback", "GGUF auto-fix", "missing tokenizer.ggml.byte_fallback",
       f"{GGUF}::test_missing_add_space_prefix_and_byte_fallback"),
    _c("gguf.fix.special_ids", "GGUF auto-fix", "missing special token ids (BOS, EOS, PAD, UNK)",
       f"{GGUF}::test_missing_special_ids_match_llamacpp_defaults_for_spm",
       f"{GGUF}::test_missing_special_ids_recover_the_original",
       f"{GGUF}::test_nothing_guessed_when_nothing_fits"),
    # model compatibility
    _c("models.llamacpp-loadable", "Model compatibility", "all models llama.cpp can load "
       "(parse: every GGUF; run: the supported architectures)",
       f"{GGUF}::test_real_files_match_gguf_py"),
    _c("models.missing-metadata", "Model compatibility", "models llama.cpp cannot load due to "
       "missing tokenizer metadata", f"{GGUF}::test_missing_pre_is_detected"),
    _c("models.vocab-mismatch", "Model compatibility", "vocabulary size mismatches (with warning)",
       f"{GGUF}::test_vocab_size_mismatch_is_a_warning"),
    # GGUF v2/v3
    _c("gguf.versions", "GGUF format", "v2 and v3 headers accepted with defensive parsing",
       f"{GGUF}::test_v2_is_accepted", f"{GGUF}::test_big_endian_v3_reads_like_little_endian",
       f"{GGUF}::test_v1_is_rejected_naming_supported_versions",
       f"{GGUF}::test_bad_file_corpus", f"{GGUF}::test_truncated_at_every_section_boundary",
       f"{GGUF}::test_mutations_raise_only_gguf_error", "fuzz::gguf"),
    _c("gguf.alignment", "GGUF format", "invalid alignment (0, non-power-of-two) clamped to 32",
       f"{GGUF}::test_bad_file_corpus[kv_alignment_0]",
       f"{GGUF}::test_bad_file_corpus[kv_alignment_13]",
       f"{GGUF}::test_bad_file_corpus[kv_alignment_int32_typed]"),
    _c("gguf.data_offset", "GGUF format", "invalid data_offset falls back to "
       "align_up(kv_end, alignment) (see docs/COMPATIBILITY.md)",
       f"{GGUF}::test_bad_file_corpus[tensor_offset_misaligned]",
       f"{GGUF}::test_bad_file_corpus[tensor_offset_past_eof]"),
    # performance
    _c("perf.no-regression", "Performance", "no regression vs llama.cpp (bitnet-compat bench)",
       "bench::decode"),
    _c("perf.loading", "Performance", "better model loading (memory-mapped)", "bench::load",
       "bench::constructor"),
    _c("perf.tokenization", "Performance", "better tokenization (especially GPT-2)", "bench::tokenize"),
    _c("perf.simd", "Performance", "hand-optimized SIMD operations", "bench::matmul"),
    _c("kernels.optimized-vs-reference", "Performance", "the SIMD kernels compute what the "
       "reference computes (NMSE per test-backend-ops, guard bytes, every ISA variant)",
       f"{KERNELS}::test_matmul_matches_reference", f"{KERNELS}::test_elementwise_match_reference",
       f"{KERNELS}::test_get_rows_bit_identical",
       f"{KERNELS}::test_real_model_logits_match_reference_backend"),
    # numerics, engine
    _c("sampling.llamacpp-chain", "Python API", "sampling follows llama.cpp's sampler chain "
       "(same candidates, probabilities and seeded picks)", SAMPLING),
    _c("numerics.quantization-bounds", "What we don't guarantee", "identical numerics not "
       "guaranteed; within quantization bounds", f"{QUANTS}", f"{ENGINE}"),
    _c("models.bitnet-b1.58", "Model compatibility", "BitNet b1.58 (I2_S, no pre key, shaped "
       "like the official 2B-4T GGUF) loads and generates where llama.cpp cannot",
       f"{ENGINE}::test_llamacpp_cannot_load_i2s_files",
       f"{ENGINE}::test_bitnet_b158_official_shape_loads_and_generates",
       f"{ENGINE}::test_i2s_matches_tq2_0_run_by_llamacpp"),
    _c("models.llama-logits", "Model compatibility", "llama-family logits agree with llama.cpp "
       "within quantization bounds (SmolLM2 real weights)",
       f"{ENGINE}::test_smollm2_logits_match_llamacpp",
       f"{ENGINE}::test_smollm2_greedy_diverges_only_at_near_ties"),
    _c("models.bitnet-logits", "Model compatibility", "mainline bitnet TQ1_0/TQ2_0 logits agree "
       "with llama.cpp", f"{ENGINE}::test_synthetic_bitnet_matches_llamacpp"),
    _c("features.http-server", "Compatibility advantages", "integrated HTTP server with "
       "streaming (OpenAI-compatible, concurrent)", "tests/test_server.py", "tests/test_server_openai.py",
       "tests/test_server_limits.py", "tests/test_server_ops.py"),
    # tests and CI
    _c("tests.required-files", "Test coverage", "api_contract, tokenizer_contracts, "
       "gguf_compatibility, test_llama_compat exist and run", f"{CAPI}::test_legacy_api_program",
       f"{TOK}::test_llamacpp_vectors", f"{GGUF}::test_real_files_match_gguf_py",
       f"{LLAMA}::test_signatures_match_llama_cpp_python"),
    _c("ci.workflow", "CI", ".github/workflows/compatibility.yml: Linux/macOS/Windows x "
       "Python 3.8-3.12", "tests/test_ci_workflow.py"),
    # migration
    _c("migration.c", "Migration", "C: change the include and the library, nothing else",
       f"{CAPI_SURFACE}::test_current_api_program_builds_against_llama_h_too",
       f"{CAPI}::test_current_api_program", f"{CAPI}::test_flags_point_at_header_and_library",
       f"{CAPI_EXAMPLES}::test_simple_prints_libllama_text",
       f"{CAPI_EXAMPLES}::test_simple_chat_builds_and_chats"),
    _c("migration.c-common", "Migration", "C: llama.cpp's common/ and the programs built on it "
       "(tokenize, embedding, batched, test-save-load-state) link against libbitnet_ffi and print "
       "what their libllama builds print (slow: --full)",
       f"{CAPI_EXAMPLES}::test_tokenize_example", f"{CAPI_EXAMPLES}::test_embedding_example",
       f"{CAPI_EXAMPLES}::test_embedding_example_with_flash_attention",
       f"{CAPI_EXAMPLES}::test_batched_example", f"{CAPI_EXAMPLES}::test_save_load_state_test_program"),
    _c("migration.python", "Migration", "Python: change the import, nothing else",
       f"{LLAMA}::test_signatures_match_llama_cpp_python",
       f"{LLAMA}::test_completion_dict_structure"),
)


def contract_ids() -> List[str]:
    return [c.id for c in CONTRACTS]


def status(contract: Contract, outcomes: Dict[str, str]) -> Tuple[str, List[str]]:
    """('passed'|'failed'|'unproven', matching node ids) from pytest outcomes by node id."""
    matched = [node for node in outcomes
               if any(node == chk or node.startswith(chk + "::") or node.startswith(chk + "[")
                      or (chk.endswith(".py") and node.startswith(chk)) for chk in contract.checks)]
    if not contract.checks or not matched:
        return "unproven", matched
    results = [outcomes[n] for n in matched]
    if any(r == "failed" for r in results):
        return "failed", matched
    if all(r == "passed" for r in results):
        return "passed", matched
    return "unproven", matched  # some skipped: not proven in this run
