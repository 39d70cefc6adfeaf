"""Errors a user can act on, and how the command-line tools report them.

Every exception raised for bad input (a malformed data file, an unknown config key, a trial
shape the cluster cannot schedule) is a `RayDreamError`. Command-line entry points turn it,
a command-line usage error and a file that cannot be read or written (`OSError`) into one
line on stderr and exit status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Callable, NoReturn, Sequence

USAGE_ERROR = 2  # bad input, bad flags, an unreadable or unwritable file
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as a shell reports it
TERMINATED = 143  # SIGTERM (128 + 15)


class RayDreamError(Exception):
    """An error caused by input or settings, with a message that says what to fix."""


class DataError(RayDreamError):
    """A data file or prepared dataset is malformed."""


class ConfigError(RayDreamError):
    """A configuration or search-space key or value is invalid."""


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread so that every `finally` and clean-up runs."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is a `ConfigError` (one `error:` line, exit 2) naming the
    command and pointing at --help, instead of a usage block."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message} (see {self.prog} --help)")


def _describe_os_error(err: OSError) -> str:
    what = err.strerror or str(err) or type(err).__name__
    names = [n for n in (err.filename, err.filename2) if n is not None]
    return f"{' -> '.join(map(str, names))}: {what}" if names else what


def _raise_terminated(signum, frame) -> NoReturn:
    raise Terminated()


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI `main`, turning a `RayDreamError` or an `OSError` (a file that cannot be read
    or written: missing, a directory, read-only, ...) into one stderr line and exit status 2.

    Ctrl-C exits with 130 and SIGTERM with 143, the shell conventions, after the command's
    clean-up has run (temporary files removed). Any other exception is a bug and keeps its
    traceback.
    """
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return main(argv)
    except RayDreamError as err:
        logging.getLogger("raydream").debug("error detail", exc_info=True)
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as err:
        logging.getLogger("raydream").debug("error detail", exc_info=True)
        print(f"error: {_describe_os_error(err)}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except Terminated:
        print("terminated", file=sys.stderr)
        return TERMINATED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
