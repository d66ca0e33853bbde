"""hepml's functional ops. Each module here defines functions (thin calls into
hepml._C), lists them in ``__all__``, and attaches Tensor methods with
``tensor_methods``. Modules are imported in name order; adding a family is
adding a file."""
import importlib
import pkgutil

__all__ = []

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name.startswith("_"):
        continue
    _mod = importlib.import_module(f"{__name__}.{_info.name}")
    for _name in getattr(_mod, "__all__", []):
        globals()[_name] = getattr(_mod, _name)
        __all__.append(_name)
