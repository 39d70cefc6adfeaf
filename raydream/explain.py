"""`python -m raydream.explain`: the command line of `raydream.results.explain`."""

from raydream.core.errors import run_cli
from raydream.results.explain import console, main  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
