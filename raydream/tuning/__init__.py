"""Layer 5, search: search spaces (`space`), the checked plan of a search and its resources
(`plan`), the stall watch (`watch`) and the Tuner (`tuner`). The top layer: imports every
layer below it, and nothing imports it but the command line (`python -m raydream.tune`) and
the Python API (`raydream.search`)."""
