"""`python -m raydream.evaluate`: the command line of `raydream.results.evaluate`."""

from raydream.core.errors import run_cli
from raydream.results.evaluate import console, main  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
