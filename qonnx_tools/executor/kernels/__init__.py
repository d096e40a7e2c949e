"""Standard ONNX kernels, one module per op family; importing a module registers its kernels."""

from importlib import import_module
from pkgutil import iter_modules

for _info in iter_modules(__path__):
    if not _info.name.startswith("_"):
        import_module(f"{__name__}.{_info.name}")
