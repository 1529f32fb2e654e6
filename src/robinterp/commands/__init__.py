"""CLI verbs, one module per noun. Importing this package registers every verb with `cli.verb`.

To add verbs: create `commands/<noun>.py`, decorate each function with `@verb(name, help)` and
give it `fn.flags = lambda p: (...)`. No edit to cli.py is needed.
"""

import importlib
import pkgutil

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_mod}")
