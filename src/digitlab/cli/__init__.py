"""The `digitlab` command: flags and a call into an importable function, nothing more.

`parser.py` declares the subcommands and flags, `commands.py` holds one function per subcommand; `main`
runs one, turning a `DigitlabError` into one line on stderr and exit status 2.
"""

from __future__ import annotations

import os
import sys

from digitlab.cli.parser import build_parser
from digitlab.errors import DigitlabError
from digitlab.tf_logging import import_tensorflow


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--verbose" in argv[: argv.index("--") if "--" in argv else len(argv)]:
        os.environ["DIGITLAB_LOG"] = "debug"  # before TensorFlow starts, and inherited by launched workers
    args = build_parser().parse_args(argv)
    if getattr(args, "tensorflow", False):
        import_tensorflow()  # quietly (see tf_logging); predict and serve start it only for --runtime keras
    try:
        return args.func(args)
    except DigitlabError as e:
        print(f"digitlab: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only folder, a vanished file: say which, in one line
        where = f" ({e.filename})" if e.filename else ""
        print(f"digitlab: error: cannot write or read a file{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("digitlab: interrupted", file=sys.stderr)
        return 130
