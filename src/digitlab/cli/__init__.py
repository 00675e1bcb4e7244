"""The `digitlab` command: flags and a call into an importable function, nothing more.

`parser.py` declares the subcommands and flags, `commands.py` holds one function per subcommand; `main`
runs one, turning a `DigitlabError` into one line on stderr and exit status 2 (with `--verbose`, the full
chained traceback first, so the library error behind the line can be read).
"""

from __future__ import annotations

import os
import sys
import traceback

from digitlab.cli.parser import build_parser
from digitlab.errors import EXTRAS, DigitlabError, install_hint
from digitlab.tf_logging import import_tensorflow


def main(argv: list[str] | None = None) -> int:
    """Run one `digitlab` subcommand.

    Args:
        argv: The arguments after the program name (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 on success, 1 when some inputs failed (e.g. `predict` on a folder with broken
        files), 2 on a user-facing error (printed as one line on stderr), 130 when interrupted.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = "--verbose" in argv[: argv.index("--") if "--" in argv else len(argv)]
    if verbose:
        os.environ["DIGITLAB_LOG"] = "debug"  # before TensorFlow starts, and inherited by launched workers
    args = build_parser().parse_args(argv)
    if getattr(args, "tensorflow", False):
        import_tensorflow()  # quietly (see tf_logging); predict and serve start it only for --runtime keras
    try:
        return args.func(args)
    except DigitlabError as e:
        _error(f"{e}", e, verbose)
        return 2
    except ModuleNotFoundError as e:  # a command of an extra that is not installed (e.g. serve without fastapi)
        missing = (e.name or "").partition(".")[0]
        if missing not in EXTRAS:
            raise  # not an optional library: a broken install or a bug, keep the traceback
        _error(f"digitlab {args.command} needs {missing} ({install_hint(missing)})", e, verbose)
        return 2
    except OSError as e:  # a full disk, a read-only folder, a vanished file: say which, in one line
        where = f" ({e.filename})" if e.filename else ""
        _error(f"cannot write or read a file{where}: {e.strerror or e}", e, verbose)
        return 2
    except KeyboardInterrupt:
        print("digitlab: interrupted", file=sys.stderr)
        return 130


def _error(line: str, e: BaseException, verbose: bool) -> None:
    """The one line on stderr; under --verbose, the traceback with every chained cause above it."""
    if verbose:
        traceback.print_exception(e, file=sys.stderr)
    print(f"digitlab: error: {line}", file=sys.stderr)
