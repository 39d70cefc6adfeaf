"""`python -m raydream.results EXPERIMENT`: an experiment's ranked table."""

from raydream.core.errors import run_cli
from raydream.results.table import main

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
