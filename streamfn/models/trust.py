"""Which registered versions a process may load: the registry is a code-execution boundary.

Loading a pickled model runs whatever its pickle says, and loading a custom `python_function`
runs its author's code (`load_context`), inside a poller that holds S3 and Redis credentials.
Whoever may register a version or set an alias (`champion`, `challenger`) could run code in every
poller. MODEL_FLAVORS lists the flavours a process may load; its default lists the formats that
load without running the model's own code, those streamfn itself trains and compiles:

- `sklearn`: scikit-learn saved with skops (no pickle), trusting only types of scikit-learn's own
  stack (SKOPS_ROOTS), as `streamfn train` logs it;
- `lightgbm`: a LightGBM Booster in its own text format, or its scikit-learn API saved with skops
  under the same rule;
- `onnx`: an ONNX graph (`streamfn compile`).

Anything else must be listed on purpose: `xgboost` (its own JSON or UBJSON formats), the pickled
`sklearn:pickle`, `sklearn:cloudpickle`, `lightgbm:pickle`, `lightgbm:cloudpickle`, and
`python_function`: a custom pyfunc, a model shipping code paths (imported at load), a skops model
trusting types from elsewhere, or any flavour not named here. A version of a flavour not listed is
refused before it is loaded, with a message naming the variable; ingest answers 503 for that model
(schema_cache) and the infer function fails its messages alone, as for a version without a
signature.
"""

from __future__ import annotations

from typing import Any

import yaml

from streamfn.core import plugins
from streamfn.core.plugins import FLAVOURS
from streamfn.models.schemas import SchemaError

PYTHON_FUNCTION = plugins.PYTHON_FUNCTION
DEFAULT = plugins.parse_flavours(plugins.DEFAULT_FLAVOURS)
# The pyfunc loader of each flavour streamfn knows, and the serialisation its loader assumes when
# the MLmodel names none (mlflow's own defaults).
_LOADERS = {"mlflow.sklearn": "sklearn", "mlflow.lightgbm": "lightgbm",
            "mlflow.xgboost": "xgboost", "mlflow.onnx": "onnx"}  # fmt: skip
_DEFAULT_SERIALISATION = {"sklearn": "pickle", "lightgbm": "cloudpickle"}
_BOOSTER = "lightgbm.basic.Booster"
# What a skops model may ask to trust (skops builds those types as it loads): the libraries of
# the models themselves, and the standard collections they hold.
SKOPS_ROOTS = frozenset({"sklearn", "numpy", "scipy", "lightgbm", "xgboost", "collections"})


class UntrustedModelError(SchemaError):
    """A version of a flavour MODEL_FLAVORS does not list: it is not loaded."""


def flavour_of(mlmodel: str) -> str:
    """The flavour a version loads as, from its MLmodel file (python_function when unsure)."""
    flavors: dict[str, Any] = (yaml.safe_load(mlmodel) or {}).get("flavors") or {}
    pyfunc = flavors.get(PYTHON_FUNCTION) or {}
    name = _LOADERS.get(pyfunc.get("loader_module", ""))
    if name is None or name not in flavors:
        return PYTHON_FUNCTION  # a custom pyfunc, or a loader streamfn does not know
    conf = flavors[name] or {}
    if pyfunc.get("code") or conf.get("code"):
        return PYTHON_FUNCTION  # code paths are put on sys.path and imported at load
    if name not in _DEFAULT_SERIALISATION or conf.get("model_class") == _BOOSTER:
        return name  # xgboost's, ONNX's and a Booster's formats hold no code
    serialisation = conf.get("serialization_format") or _DEFAULT_SERIALISATION[name]
    if serialisation != "skops":
        return f"{name}:{serialisation}"
    trusted = conf.get("skops_trusted_types") or []
    return name if all(str(t).split(".")[0] in SKOPS_ROOTS for t in trusted) else PYTHON_FUNCTION


def check(mlmodel: str, allowed: frozenset[str], what: str) -> str:
    """The version's flavour if MODEL_FLAVORS lists it; else UntrustedModelError saying why."""
    flavour = flavour_of(mlmodel)
    if flavour not in allowed:
        raise UntrustedModelError(
            f"{what} is {flavour} ({FLAVOURS[flavour]}), which MODEL_FLAVORS="
            f"{','.join(sorted(allowed))} does not list: it is not loaded. Add {flavour} to "
            "MODEL_FLAVORS only if you trust whoever may register versions and set aliases"
        )
    return flavour
