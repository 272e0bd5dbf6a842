"""Import a function's ``app.py`` by path, as Lambda would, under a unique module name."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from .paths import FUNCTIONS_DIR


def load_function(name: str) -> ModuleType:
    """Load ``functions/<name>/app.py`` once per process (both functions are called ``app``)."""
    module_name = f"{name}_app"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = FUNCTIONS_DIR / name / "app.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
