"""bitnet.optimized: hand-vectorized C kernels behind the `bitnet.ops` interface (not built yet)."""
