"""The `bitnet` command: inspect and repair GGUF files, generate text.

    bitnet inspect FILE [--json]     header, metadata, tensors, fixes and warnings
    bitnet fix IN OUT                write a repaired copy (never in place)
    bitnet generate MODEL PROMPT     stream a continuation (see `bitnet generate -h`)
    bitnet serve --model PATH        OpenAI-compatible HTTP server (see `bitnet serve --help`)
    bitnet quantize IN OUT --type T  quantize a GGUF file
    bitnet convert HF_DIR OUT        a Hugging Face BitNet checkpoint to GGUF

Errors print one line and exit non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from bitnet.errors import BitNetError
from bitnet.gguf import GGUFFile, load
from bitnet.gguf.writer import write_repaired_copy

ARRAY_PREVIEW = 8


def _summarise(value: Any) -> Any:
    """JSON-friendly value; long arrays become a count and a preview."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list):
        if len(value) > ARRAY_PREVIEW:
            return {"array_length": len(value), "first": [_summarise(v) for v in value[:ARRAY_PREVIEW]]}
        return [_summarise(v) for v in value]
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + f"... ({len(value)} chars)"
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def describe(gf: GGUFFile) -> Dict[str, Any]:
    """Everything `bitnet inspect` shows, as a JSON-serialisable dict."""
    return {
        "path": str(gf.path),
        "version": gf.version,
        "byte_order": "little" if gf.byte_order == "<" else "big",
        "alignment": gf.alignment,
        "data_offset": gf.data_offset,
        "file_size": gf.file_size,
        "kv": {k: {"type": gf.kv_types[k].name if k in gf.kv_types else "(repaired)",
                   "value": _summarise(v)} for k, v in gf.kv.items()},
        "tensors": [{"name": t.name, "type": t.type_name, "shape": list(t.shape),
                     "bytes": t.nbytes, "offset": t.offset} for t in gf.tensors.values()],
        "fixes": [{"key": f.key, "old": _summarise(f.old), "new": _summarise(f.new),
                   "reason": f.reason} for f in gf.fixes],
        "warnings": list(gf.warnings),
    }


def _print_text(info: Dict[str, Any]) -> None:
    print(f"{info['path']}: GGUF v{info['version']} ({info['byte_order']}-endian), "
          f"alignment {info['alignment']}, data at {info['data_offset']}, "
          f"{info['file_size']} bytes")
    print(f"\nmetadata ({len(info['kv'])} keys):")
    for key, entry in info["kv"].items():
        print(f"  {key} [{entry['type']}] = {json.dumps(entry['value'], ensure_ascii=False)}")
    print(f"\ntensors ({len(info['tensors'])}):")
    for t in info["tensors"]:
        print(f"  {t['name']:<40} {t['type']:<7} {str(t['shape']):<24} {t['bytes']} bytes")
    print(f"\nfixes applied ({len(info['fixes'])}):")
    for f in info["fixes"]:
        print(f"  {f['key']}: {f['old']!r} -> {f['new']!r} ({f['reason']})")
    print(f"\nwarnings ({len(info['warnings'])}):")
    for w in info["warnings"]:
        print(f"  {w}")


def cmd_inspect(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shown in the report instead
        gf = load(args.file)
    info = describe(gf)
    if args.json:
        json.dump(info, sys.stdout, indent=1, ensure_ascii=False, default=str)
        print()
    else:
        _print_text(info)
    return 0


def cmd_fix(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gf = load(args.input)
    write_repaired_copy(gf, args.output)
    for fix in gf.fixes:
        print(f"fixed {fix}")
    print(f"wrote {args.output} ({len(gf.fixes)} fixes)")
    return 0


# Subcommands implemented by their own modules: `bitnet NAME ARGS...` calls MODULE.main(ARGS).
DELEGATES = {
    "generate": ("bitnet.tools.generate", "stream a continuation of a prompt"),
    "serve": ("bitnet.server", "OpenAI-compatible HTTP server"),
    "quantize": ("bitnet.tools.quantize", "quantize a GGUF file (streaming, tensor by tensor)"),
    "convert": ("bitnet.tools.convert", "convert a Hugging Face BitNet checkpoint to GGUF"),
}


def _delegate(name: str, argv: Sequence[str]) -> int:
    import importlib

    module = importlib.import_module(DELEGATES[name][0])
    return int(module.main(list(argv)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitnet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="show a GGUF file's header, metadata, tensors and fixes")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("fix", help="write a repaired copy of a GGUF file")
    p.add_argument("input")
    p.add_argument("output")
    p.set_defaults(func=cmd_fix)
    for name, (_, help_text) in DELEGATES.items():
        sub.add_parser(name, help=f"{help_text} (`bitnet {name} --help`)", add_help=False)
    return parser


def _guarded(command: str, call: Callable[[], int]) -> int:
    """Run a subcommand: a one-line error and exit 1 for expected failures, never a traceback;
    a reader that closed the pipe early (`bitnet inspect ... | head`) is not an error."""
    try:
        return int(call())
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 0
    except (BitNetError, OSError, ValueError) as exc:
        print(f"bitnet {command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `bitnet` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATES:
        return _guarded(argv[0], lambda: _delegate(argv[0], argv[1:]))
    args = build_parser().parse_args(argv)
    return _guarded(args.command, lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
