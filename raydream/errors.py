"""Errors a user can act on.

Every exception raised for bad input (a malformed data file, an unknown config key, a trial
shape the cluster cannot schedule) is a `RayDreamError`. Command-line entry points turn it
into one line on stderr and a non-zero exit instead of a traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable, Sequence


class RayDreamError(Exception):
    """An error caused by input or settings, with a message that says what to fix."""


class DataError(RayDreamError):
    """A data file or prepared dataset is malformed."""


class ConfigError(RayDreamError):
    """A configuration or search-space key or value is invalid."""


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI `main`, turning a `RayDreamError` into one stderr line and exit code 2.

    Ctrl-C exits with 130, the shell convention. Any other exception is a bug and keeps
    its traceback.
    """
    try:
        return main(argv)
    except RayDreamError as err:
        logging.getLogger("raydream").debug("error detail", exc_info=True)
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
