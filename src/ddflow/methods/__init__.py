"""Method kinds: one registry to look a kind up by name (as timm's model registry).

A kind declares its config block (a `$defs` entry of the schema), the defaults it changes, how its
jobs are planned (recovered per shard and assembled, or one job per IPC that builds the set), what
it reads (data, teacher, ranking, teacher features), the version and code its stage id follows,
and how it makes its images. Config validation, stage ids, the shard plan, the rules and the
stages ask the kind. Adding a kind: one module in this folder that calls `register`, its schema
block, tests.
"""

import importlib
import pkgutil

from ddflow.methods.base import KINDS, Inputs, MethodKind, kind_of, register

for _module in pkgutil.iter_modules(__path__):  # each module registers its kinds on import
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["KINDS", "MethodKind", "Inputs", "kind_of", "register"]
