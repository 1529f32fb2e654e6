"""robinterp: standard vs adversarially robust image classifiers, and how interpretable they are.

The library holds the nouns (data, models, attacks, training, analyses, metrics, plots);
`robinterp <verb>` (see `cli.py`) is the thin command line that Snakemake rules call.
"""

__version__ = "0.1.0"
