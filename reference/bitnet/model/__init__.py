"""Model graphs (llama, bitnet, bitnet-b1.58), weights, KV cache and eval.

Public surface: `Model` (load a GGUF file), `Context` (KV cache + eval),
`SUPPORTED_ARCHITECTURES`.
"""

from bitnet.model.hparams import SUPPORTED_ARCHITECTURES, HParams
from bitnet.model.model import Context, Model

__all__ = ["SUPPORTED_ARCHITECTURES", "Context", "HParams", "Model"]
