"""The vision chat handlers of llama-cpp-python, by name only.

llama-cpp-python's Llava / MTMD handlers run a CLIP / mtmd projector through its llava_cpp /
mtmd_cpp ctypes bindings; this project has no vision encoder. The classes exist so that code
importing them loads; creating one raises NotImplementedError with the reason.
"""

from __future__ import annotations

from typing import Any


class Llava15ChatHandler:
    """A multimodal (image) chat handler: not available in bitnet.llama_compat."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            f"{type(self).__name__}: vision chat handlers need llama.cpp's multimodal projector "
            "(llava / mtmd), which bitnet.llama_compat does not provide")


class MTMDChatHandler(Llava15ChatHandler):
    pass


class Gemma4ChatHandler(MTMDChatHandler):
    pass


class ObsidianChatHandler(Llava15ChatHandler):
    pass


class MoondreamChatHandler(Llava15ChatHandler):
    pass


class Llava16ChatHandler(Llava15ChatHandler):
    pass


class NanoLlavaChatHandler(Llava15ChatHandler):
    pass


class Llama3VisionAlphaChatHandler(Llava15ChatHandler):
    pass


Llama3VisionAlpha = Llama3VisionAlphaChatHandler


class MiniCPMv26ChatHandler(Llava15ChatHandler):
    pass


class Qwen25VLChatHandler(Llava15ChatHandler):
    pass
