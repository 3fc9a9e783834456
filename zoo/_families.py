"""The model families that ship with zoo; imported lazily so `import zoo` stays fast."""

from __future__ import annotations

import importlib


# One entry per family package. Importing a family registers its config types,
# training presets and pretrained model names.
FAMILY_MODULES: tuple[str, ...] = ("zoo.toy", "zoo.kscore", "zoo.classifier", "zoo.dvae", "zoo.ncsn", "zoo.ebm")

_imported = False


def import_families() -> None:
    global _imported
    if _imported:
        return
    for module in FAMILY_MODULES:
        importlib.import_module(module)
    _imported = True
