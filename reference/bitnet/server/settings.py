"""Settings of `bitnet serve`: flags, environment variables and a JSON/YAML config file.

Mirrors llama-cpp-python's server settings (`llama_cpp/server/settings.py`): the same field
names for what this engine honours, `--config` (alias `--config_file`, env `CONFIG_FILE`) with
`{"host": ..., "models": [{"model": ..., "model_alias": ...}, ...]}`. Precedence for one value:
command-line flag > environment variable (the field name upper-cased, e.g. `N_CTX`, `API_KEY`)
> config file > default. With a config file the models come from the file only (a model flag
beside `--config` is an error); server flags and variables still override the file's values.

Added here: `parallel` (per model: how many requests run at once, one `Llama` instance and
context each), `queue_size` and `retry_after` (requests waiting beyond the busy slots; when
full the server answers 503 with Retry-After). Divergences: `host` defaults to 127.0.0.1;
`logits_all` defaults to False (llama-cpp-python: True) since every parallel slot would hold
an n_ctx x n_vocab float32 score matrix; a request asking for logprobs then gets a 400.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

from pydantic import BaseModel, ConfigDict, Field


class ModelSettings(BaseModel):
    """One served model (llama-cpp-python's ModelSettings fields that this engine honours)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(description="Path to the GGUF model file.")
    model_alias: Optional[str] = Field(
        default=None, description="Name clients pass as `model` (default: the model path)."
    )
    parallel: int = Field(default=1, ge=1, description="Requests served at once (one context each).")
    n_ctx: int = Field(default=2048, ge=0, description="The context size (0: the model's).")
    n_batch: int = Field(default=512, ge=1, description="Prompt processing batch size.")
    n_threads: Optional[int] = Field(default=None, description="Accepted, no effect.")
    seed: int = Field(default=0xFFFFFFFF, description="Random seed (0xFFFFFFFF: random).")
    embedding: bool = Field(default=False, description="Allow /v1/embeddings.")
    logits_all: bool = Field(default=False, description="Keep all logits (needed for logprobs).")
    chat_format: Optional[str] = Field(default=None, description="Chat format name.")
    last_n_tokens_size: int = Field(default=64, ge=0, description="Repeat-penalty window.")
    type_k: Optional[int] = Field(default=None, description="KV cache type (1: f16).")
    type_v: Optional[int] = Field(default=None, description="Accepted, no effect.")
    verbose: bool = Field(default=False, description="Print model metadata on load.")

    def llama_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments of `bitnet.llama_compat.Llama` for this model."""
        kw = self.model_dump(exclude={"model", "model_alias", "parallel"})
        kw["model_path"] = self.model
        return kw

    @property
    def alias(self) -> str:
        """The name this model is served under."""
        return self.model_alias if self.model_alias is not None else self.model


class ServerSettings(BaseModel):
    """Listening address, authentication and admission control."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Listen address.")
    port: int = Field(default=8000, ge=0, le=65535, description="Listen port.")
    api_key: Optional[str] = Field(default=None, description="Bearer key required on every request.")
    queue_size: int = Field(default=64, ge=0, description="Requests waiting per model beyond busy slots.")
    retry_after: int = Field(default=1, ge=0, description="Retry-After seconds sent with a 503.")
    root_path: str = Field(default="", description="ASGI root path behind a proxy.")
    disable_ping_events: bool = Field(default=False, description="No SSE ping comments.")
    ssl_keyfile: Optional[str] = Field(default=None, description="TLS key file.")
    ssl_certfile: Optional[str] = Field(default=None, description="TLS certificate file.")


class ConfigFileSettings(ServerSettings):
    """A config file: server settings plus a list of models."""

    models: List[ModelSettings] = Field(default_factory=list, description="Model configs.")


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
    _add_fields(parser, ServerSettings)
    _add_fields(parser, ModelSettings)
    parser.add_argument(
        "--config", "--config_file", "--config-file", dest="config_file", default=None,
        help="JSON or YAML file with server settings and a `models` list.",
    )  # fmt: skip
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
    config_file = args.pop("config_file", None) or env.get("CONFIG_FILE")
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
            raise ValueError("no model: pass --model PATH (or MODEL=PATH, or --config FILE)")
        models = [ModelSettings.model_validate(merged)]
    if not models:
        raise ValueError("the config file lists no models")
    aliases = [m.alias for m in models]
    dupes = sorted({a for a in aliases if aliases.count(a) > 1})
    if dupes:
        raise ValueError(f"duplicate model aliases: {dupes}")
    return server, models
