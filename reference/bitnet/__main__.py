"""`python -m bitnet`: the `bitnet` command."""

from bitnet.tools.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
