"""`python -m raydream.predict`: the command line of `raydream.results.predict`.

`raydream.predict` is also the Python API's function (`raydream.results.inference.predict`).
Importing this module binds its name over that function in the package, so the module calls
the function when called: `raydream.predict(checkpoints, sequences)` works either way.
"""

import sys
import types

from raydream.core.errors import run_cli
from raydream.results.predict import console, main  # noqa: F401


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from raydream.results.inference import predict

        return predict(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
