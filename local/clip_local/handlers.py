"""Import a function's ``app.py`` by path, as Lambda would, under a unique module name."""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

from .paths import FUNCTIONS_DIR
from .template import function_environment, load_template

#: Powertools reads these when the handler module is imported (its Logger and Metrics are module-level).
POWERTOOLS_VARIABLES = ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE")


def load_function(name: str) -> ModuleType:
    """Load ``functions/<name>/app.py`` once per process (both functions are called ``app``).

    Powertools' service name and metrics namespace come from the template's Globals, as Lambda sets them
    before it imports a handler; a value already in the environment is kept. The functions' own settings
    are never read from here: the local stack builds them explicitly.
    """
    module_name = f"{name}_app"
    if module_name in sys.modules:
        return sys.modules[module_name]
    logical_id = "".join(part.title() for part in name.split("_")) + "Function"
    deployed = function_environment(load_template(), logical_id)
    for variable in POWERTOOLS_VARIABLES:
        os.environ.setdefault(variable, deployed[variable])
    path = FUNCTIONS_DIR / name / "app.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
