"""Imports every pass module of this package so that their @register_pass decorators run."""

from importlib import import_module
from pkgutil import iter_modules

import qonnx_tools.passes as _package

_INFRASTRUCTURE = {"base", "pipeline", "builtin"}

for _info in iter_modules(_package.__path__):
    if not _info.name.startswith("_") and _info.name not in _INFRASTRUCTURE:
        import_module(f"{_package.__name__}.{_info.name}")
