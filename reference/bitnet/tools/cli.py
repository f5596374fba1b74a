"""The `bitnet` command: inspect and repair GGUF files, generate text.

    bitnet inspect FILE [--json]     header, metadata, tensors, fixes and warnings
    bitnet fix IN OUT                write a repaired copy (never in place)
    bitnet generate MODEL PROMPT     stream a continuation (see `bitnet generate -h`)
    bitnet serve --model PATH        OpenAI-compatible HTTP server (see `bitnet serve --help`)
    bitnet quantize IN OUT --type T  quantize a GGUF file
    bitnet convert HF_DIR OUT        a Hugging Face BitNet checkpoint to GGUF

Errors print one line and exit non-zero (1; 2 for usage errors and a missing extra); never a
traceback. Commands that write a file never write over their input (bitnet.safe_write).
Metadata repairs are logged on stderr when they change behaviour compared with llama.cpp
(`-v`: also those that equal llama.cpp's defaults).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from bitnet import __version__
from bitnet.errors import BitNetError
from bitnet.gguf import GGUFFile, load
from bitnet.gguf.writer import write_repaired_copy
from bitnet.tools.extras import EXIT_MISSING_EXTRA, missing_extra
from bitnet.tools.progress import progress_bar, wanted

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
                   "reason": f.reason, "as_llama_cpp": f.as_llama_cpp} for f in gf.fixes],
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
        same = "as llama.cpp" if f["as_llama_cpp"] else "differs from llama.cpp"
        print(f"  {f['key']}: {f['old']!r} -> {f['new']!r} ({f['reason']}) [{same}]")
    print(f"\nwarnings ({len(info['warnings'])}):")
    for w in info["warnings"]:
        print(f"  {w}")


def cmd_inspect(args: argparse.Namespace) -> int:
    gf = load(args.file, quiet=True)  # the repairs are part of the output
    info = describe(gf)
    if args.json:
        json.dump(info, sys.stdout, indent=1, ensure_ascii=False, default=str)
        print()
    else:
        _print_text(info)
    return 0


def cmd_fix(args: argparse.Namespace) -> int:
    from bitnet.safe_write import check_output

    check_output(args.output, [args.input])  # refuse before reading anything
    gf = load(args.input, quiet=True)  # each fix is printed below
    with progress_bar("writing", len(gf.tensors), enabled=wanted(args.no_progress)) as advance:
        write_repaired_copy(gf, args.output, on_tensor=advance)
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
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="bitnet", description=__doc__.splitlines()[0],
                                     formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"bitnet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also log metadata repairs that equal llama.cpp's defaults")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("inspect", help="show a GGUF file's header, metadata, tensors and fixes",
                       formatter_class=fmt)
    p.add_argument("file", help="GGUF file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("fix", help="write a repaired copy of a GGUF file", formatter_class=fmt)
    p.add_argument("input", help="GGUF file to read")
    p.add_argument("output", help="GGUF file to write (never the input; replaced atomically)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is shown only on a terminal anyway)")
    p.set_defaults(func=cmd_fix)
    for name, (_, help_text) in DELEGATES.items():
        sub.add_parser(name, help=f"{help_text} (`bitnet {name} --help`)", add_help=False)
    return parser


def _guarded(command: str, call: Callable[[], int]) -> int:
    """Run a subcommand: a one-line error and exit 1 for expected failures (2 for a missing
    extra), never a traceback; a reader that closed the pipe early (`bitnet inspect ... |
    head`) is not an error."""
    try:
        return int(call())
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 0
    except ImportError as exc:
        extra = missing_extra(exc)
        if extra is None:
            raise
        print(f"bitnet {command}: {extra}", file=sys.stderr)
        return EXIT_MISSING_EXTRA
    except (BitNetError, OSError, ValueError) as exc:
        print(f"bitnet {command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _setup_logging(verbose: bool) -> None:
    """Repairs and notes (the `bitnet` loggers) as `bitnet: message` lines on stderr."""
    logger = logging.getLogger("bitnet")
    if not any(getattr(h, "_bitnet_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("bitnet: %(message)s"))
        handler._bitnet_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `bitnet` console script (and `python -m bitnet`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = bool(argv) and argv[0] in ("-v", "--verbose")
    if verbose:
        argv = argv[1:]
    _setup_logging(verbose)
    if argv and argv[0] in DELEGATES:
        return _guarded(argv[0], lambda: _delegate(argv[0], argv[1:]))
    args = build_parser().parse_args(argv)
    return _guarded(args.command, lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
