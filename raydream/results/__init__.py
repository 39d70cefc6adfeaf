"""Layer 4, results: what a search left, read from its files. The ranked table and search
record (`table`, `record`), plots (`report`), inference (`inference`, `predict`) and scoring
(`evaluate`). Starts no search and imports only the layers below (core, data, models, train);
the table itself imports neither torch nor Ray.

`python -m raydream.results EXPERIMENT` prints an experiment's ranked table.
"""

