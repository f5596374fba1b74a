"""bitnet.tools: the `bitnet` command line (`cli`), `quantize` (GGUF -> GGUF) and `convert`
(Hugging Face checkpoint -> GGUF)."""
