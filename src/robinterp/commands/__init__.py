"""CLI verbs, one module per workflow stage: commands/X.py holds the verbs that the rules of
workflow/rules/X.smk call. Importing this package registers every verb with `verbs.verb`.

To add a verb: decorate a function in its stage's module with `@verb(name, help, settings=...)`
(robinterp.verbs), give it `fn.flags = lambda p: (...)`, and list it under its stage in
`cli.STAGES`.
"""

import importlib
import pkgutil

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_mod}")
