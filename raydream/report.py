"""`python -m raydream.report`: the command line of `raydream.results.report`."""

from raydream.core.errors import run_cli
from raydream.results.report import console, main  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
