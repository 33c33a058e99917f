"""The proxy zoo: every module in this folder registers its proxies on import, so adding a
proxy is one new file here (modules whose names start with ``_`` are shared helpers)."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
