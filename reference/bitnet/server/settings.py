"""Settings of `bitnet serve`: flags, environment variables and a JSON/YAML config file.

Mirrors llama-cpp-python's server settings (`llama_cpp/server/settings.py`): the same field
names for what this engine honours, `--config` (alias `--config_file`, env `CONFIG_FILE`) with
`{"host": ..., "models": [{"model": ..., "model_alias": ...}, ...]}`. Precedence for one value:
command-line flag > environment variable (the field name upper-cased, e.g. `N_CTX`, `API_KEY`)
> config file > default. With a config file the models come from the file only (a model flag
beside `--config` is an error); server flags and variables still override the file's values.
`bitnet serve MODEL` takes the model path as a positional argument too (`--model` still works).

llama-cpp-python's other fields (GPU, mmap, rope/yarn, caches, hub downloads, ...) are accepted
in a config file and in flags and ignored, each named once in the startup log (`ignored`);
an unknown field is an error.

Added here: `parallel` (per model: requests running at once, one `Llama` and context each),
`queue_size` / `retry_after` (waiting requests beyond the busy slots; when full, 503 with
Retry-After), `numerics` (the engine's numerics mode), `max_body_bytes` (413 beyond it),
`drain_timeout` (SIGTERM: streams may finish for this long), `timeout_keep_alive` /
`header_timeout` / `body_timeout` (idle, request-head and request-body timeouts),
`cors_origins`, `api_key_file`.
Divergences: `host` defaults to 127.0.0.1; no CORS unless `cors_origins` is set
(llama-cpp-python allows every origin).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

# llama-cpp-python settings this engine accepts without effect (named in the startup log)
IGNORED_MODEL_FIELDS = frozenset(
    {
        "n_gpu_layers",
        "split_mode",
        "main_gpu",
        "tensor_split",
        "vocab_only",
        "use_mmap",
        "use_mlock",
        "kv_overrides",
        "rpc_servers",
        "n_ubatch",
        "n_threads_batch",
        "rope_scaling_type",
        "rope_freq_base",
        "rope_freq_scale",
        "yarn_ext_factor",
        "yarn_attn_factor",
        "yarn_beta_fast",
        "yarn_beta_slow",
        "yarn_orig_ctx",
        "mul_mat_q",
        "offload_kqv",
        "flash_attn",
        "lora_base",
        "lora_path",
        "numa",
        "chat_template_kwargs",
        "clip_model_path",
        "cache",
        "cache_type",
        "cache_size",
        "hf_tokenizer_config_path",
        "hf_pretrained_model_name_or_path",
        "hf_model_repo_id",
        "draft_model",
        "draft_model_num_pred_tokens",
    }
)
IGNORED_SERVER_FIELDS = frozenset({"interrupt_requests"})
NUMERICS = ("llama.cpp", "float", "reference")


def _pop_ignored(data: Any, names: frozenset) -> Tuple[Any, List[str]]:
    if not isinstance(data, dict):
        return data, []
    kept = {k: v for k, v in data.items() if k not in names}
    return kept, sorted(k for k in data if k in names)


class ModelSettings(BaseModel):
    """One served model (llama-cpp-python's ModelSettings fields that this engine honours)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    _ignored: List[str] = PrivateAttr(default_factory=list)

    model: str = Field(description="Path to the GGUF model file.")
    model_alias: Optional[str] = Field(
        default=None, description="Name clients pass as `model` (default: the file name)."
    )
    parallel: int = Field(default=1, ge=1, description="Requests served at once (one context each).")
    n_ctx: int = Field(default=2048, ge=0, description="The context size (0: the model's).")
    n_batch: int = Field(default=512, ge=1, description="Prompt processing batch size.")
    n_threads: Optional[int] = Field(default=None, description="Accepted, no effect.")
    seed: int = Field(default=0xFFFFFFFF, description="Random seed (0xFFFFFFFF: random).")
    embedding: bool = Field(default=False, description="Allow /v1/embeddings.")
    pooling_type: Optional[int] = Field(
        default=None,
        description="Embedding pooling (1 mean, 2 cls, 3 last; default: the file's, mean if it has none).",
    )
    logits_all: bool = Field(default=True, description="Keep all logits (needed for logprobs).")
    chat_format: Optional[str] = Field(default=None, description="Chat format name.")
    last_n_tokens_size: int = Field(default=64, ge=0, description="Repeat-penalty window.")
    type_k: Optional[int] = Field(default=None, description="KV cache type (1: f16).")
    type_v: Optional[int] = Field(default=None, description="Accepted, no effect.")
    numerics: Optional[str] = Field(
        default=None,
        description="Numerics mode: llama.cpp, float or reference (default: the engine's).",
    )
    verbose: bool = Field(default=False, description="Print model metadata on load.")

    @model_validator(mode="wrap")
    @classmethod
    def _drop_ignored(cls, data: Any, handler: Any) -> Any:
        kept, ignored = _pop_ignored(data, IGNORED_MODEL_FIELDS)
        settings = handler(kept)
        settings._ignored = sorted(set(settings._ignored) | set(ignored))
        return settings

    @model_validator(mode="after")
    def _check_numerics(self) -> ModelSettings:
        if self.numerics is not None and self.numerics not in NUMERICS:
            raise ValueError(f"numerics={self.numerics!r}; expected one of {', '.join(NUMERICS)}")
        return self

    @property
    def ignored(self) -> List[str]:
        """llama-cpp-python fields given for this model that have no effect here."""
        return list(self._ignored)

    def llama_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments of `bitnet.llama_compat.Llama` for this model (without
        `numerics` and `pooling_type`, which the server decides; see `bitnet.server.slots`)."""
        kw = self.model_dump(exclude={"model", "model_alias", "parallel", "numerics", "pooling_type"})
        kw["model_path"] = self.model
        return kw

    @property
    def alias(self) -> str:
        """The name this model is served under: `model_alias`, else the file name."""
        return self.model_alias if self.model_alias is not None else os.path.basename(self.model)


class ServerSettings(BaseModel):
    """Listening address, authentication, admission control and operations."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Listen address.")
    port: int = Field(default=8000, ge=0, le=65535, description="Listen port.")
    api_key: Optional[str] = Field(
        default=None, description="Bearer key required on every request (prefer API_KEY or --api_key_file)."
    )
    api_key_file: Optional[str] = Field(default=None, description="File holding the bearer key.")
    queue_size: int = Field(default=64, ge=0, description="Requests waiting per model beyond busy slots.")
    retry_after: int = Field(default=1, ge=0, description="Retry-After seconds sent with a 503.")
    max_body_bytes: int = Field(default=8 << 20, ge=1024, description="Largest request body (413 beyond).")
    drain_timeout: float = Field(
        default=30.0, ge=0, description="On SIGTERM: seconds active requests may run before they are cut."
    )
    timeout_keep_alive: int = Field(default=5, ge=1, description="Idle keep-alive connection timeout (s).")
    header_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a client has to send request headers."
    )
    body_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a client may pause while sending a request body (408 after)."
    )
    cors_origins: Optional[str] = Field(
        default=None, description="Comma-separated origins allowed by CORS ('*': any); none by default."
    )
    root_path: str = Field(default="", description="ASGI root path behind a proxy.")
    disable_ping_events: bool = Field(default=False, description="No SSE ping comments.")
    ssl_keyfile: Optional[str] = Field(default=None, description="TLS key file.")
    ssl_certfile: Optional[str] = Field(default=None, description="TLS certificate file.")
    log_level: str = Field(default="info", description="Log level (debug, info, warning, error).")

    def resolved_api_key(self) -> Optional[str]:
        """The API key: `api_key`, else the first line of `api_key_file` (ValueError if the file
        is unreadable or empty)."""
        if self.api_key is not None:
            return self.api_key
        if self.api_key_file is None:
            return None
        try:
            with open(self.api_key_file, encoding="utf-8") as f:
                key = f.readline().strip()
        except OSError as e:
            raise ValueError(f"api_key_file {self.api_key_file}: {e}") from e
        if not key:
            raise ValueError(f"api_key_file {self.api_key_file} is empty")
        return key

    def cors_origin_list(self) -> List[str]:
        """`cors_origins` split on commas (empty: CORS off)."""
        if not self.cors_origins:
            return []
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


class ConfigFileSettings(ServerSettings):
    """A config file: server settings plus a list of models."""

    models: List[ModelSettings] = Field(default_factory=list, description="Model configs.")

    @model_validator(mode="before")
    @classmethod
    def _drop_ignored(cls, data: Any) -> Any:
        return _pop_ignored(data, IGNORED_SERVER_FIELDS)[0]


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")


def _add_fields(parser: argparse.ArgumentParser, cls: Type[BaseModel], skip: Sequence[str] = ()) -> None:
    for name, field in cls.model_fields.items():
        if name in skip:
            continue
        flags = [f"--{name}"]
        if "_" in name:
            flags.append(f"--{name.replace('_', '-')}")
        kind: Any = str
        ann = str(field.annotation)
        if "bool" in ann:
            kind = _bool
        elif "int" in ann:
            kind = int
        elif "float" in ann:
            kind = float
        parser.add_argument(*flags, dest=name, type=kind, default=argparse.SUPPRESS, help=field.description)


def build_parser() -> argparse.ArgumentParser:
    """The `bitnet serve` / `python -m bitnet.server` argument parser."""
    parser = argparse.ArgumentParser(
        prog="bitnet serve", description="OpenAI-compatible HTTP server for GGUF models."
    )
    parser.add_argument(
        "model_path",
        nargs="?",
        default=None,
        metavar="MODEL",
        help="Path to the GGUF model file (same as --model).",
    )
    _add_fields(parser, ServerSettings)
    _add_fields(parser, ModelSettings)
    parser.add_argument(
        "--config",
        "--config_file",
        "--config-file",
        dest="config_file",
        default=None,
        help="JSON or YAML file with server settings and a `models` list.",
    )
    for name in sorted(IGNORED_MODEL_FIELDS | IGNORED_SERVER_FIELDS):
        parser.add_argument(
            f"--{name}", dest=f"ignored:{name}", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def _env_values(cls: Type[BaseModel], environ: Dict[str, str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name in cls.model_fields:
        value = environ.get(name.upper())
        if value is not None:
            out[name] = value
    return out


def read_config_file(path: str) -> ConfigFileSettings:
    """Parse a JSON (or .yaml/.yml) config file."""
    if not os.path.exists(path):
        raise ValueError(f"Config file {path} not found!")
    with open(path, "rb") as f:
        raw = f.read()
    if path.endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(raw)
    else:
        data = json.loads(raw)
    return ConfigFileSettings.model_validate(data)


def load_settings(
    argv: Optional[Sequence[str]] = None, environ: Optional[Dict[str, str]] = None
) -> Tuple[ServerSettings, List[ModelSettings]]:
    """Server and model settings from `argv`, `environ` (default os.environ) and a config file.
    Raises ValueError (or pydantic.ValidationError) on a bad combination or value."""
    env = dict(os.environ if environ is None else environ)
    args = vars(build_parser().parse_args(argv))
    ignored_flags = sorted(k.split(":", 1)[1] for k in args if k.startswith("ignored:"))
    config_file = args.pop("config_file", None) or env.get("CONFIG_FILE")
    positional = args.pop("model_path", None)
    if positional is not None:
        if "model" in args and args["model"] != positional:
            raise ValueError(f"two models given: {positional} and --model {args['model']}")
        args["model"] = positional
    server_flags = {k: v for k, v in args.items() if k in ServerSettings.model_fields}
    model_flags = {k: v for k, v in args.items() if k in ModelSettings.model_fields}
    server_env = _env_values(ServerSettings, env)
    if config_file:
        if model_flags:
            raise ValueError(
                f"model flags {sorted(model_flags)} cannot be combined with --config "
                f"{config_file}: put them in the config file's `models` list"
            )
        cfg = read_config_file(config_file)
        base = cfg.model_dump(exclude={"models"}, exclude_unset=True)
        server = ServerSettings.model_validate({**base, **server_env, **server_flags})
        models = list(cfg.models)
    else:
        server = ServerSettings.model_validate({**server_env, **server_flags})
        merged = {**_env_values(ModelSettings, env), **model_flags}
        if "model" not in merged:
            raise ValueError("no model: pass MODEL or --model PATH (or MODEL=PATH, or --config FILE)")
        models = [ModelSettings.model_validate(merged)]
    if not models:
        raise ValueError("the config file lists no models")
    for m in models:
        m._ignored = sorted(set(m._ignored) | set(ignored_flags))
    aliases = [m.alias for m in models]
    dupes = sorted({a for a in aliases if aliases.count(a) > 1})
    if dupes:
        raise ValueError(f"duplicate model aliases: {dupes}")
    server.resolved_api_key()  # an unreadable key file fails now, not at the first request
    return server, models
