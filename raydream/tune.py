"""`python -m raydream.tune`: the search's command line (`raydream.tuning.tuner`)."""

from raydream.core.errors import run_cli
from raydream.tuning.tuner import console, main  # noqa: F401

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
