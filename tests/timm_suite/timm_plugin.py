"""A pytest plugin for running timm's own model tests (``tests/test_models.py`` of timm's sdist) on our models.

timm selects the models of its ``forward_intermediates`` / pruning tests by the modules that register them
(``FEAT_INTER_FILTERS``, a list of timm's own module names). Our variants register from ``unireplknet.model``
(module name ``model``) and implement the same API, so this plugin adds that module to every such selection;
nothing else of timm's tests is changed.
"""

from __future__ import annotations

import timm
import timm.models

OUR_MODULE = "model"  # timm keys modules by the last component of the registering module's name


def pytest_configure(config) -> None:
    import unireplknet  # noqa: F401  (registers the variants with timm)

    original = timm.models.list_models

    def list_models(filter="", module="", *args, **kwargs):
        if isinstance(module, (list, tuple)) and OUR_MODULE not in module:
            module = [*module, OUR_MODULE]
        return original(filter, module, *args, **kwargs)

    timm.list_models = timm.models.list_models = list_models
