"""What a model file may contain: the exact classes the project's own pipelines hold, by the kind
of skops node that carries them. Nothing else is ever imported or called when a model loads.

A skops file is a tree of nodes (`schema.json`), each naming a Python object by module and name
and saying how to rebuild it: an `ObjectNode` creates an instance of a class without calling it
and sets its state, a `TreeNode` or `LossNode` *calls* its class with stored arguments (a reduce
node), a `ConstructorFromReduceNode` calls what it names, a `FunctionNode` or `MethodNode` hands
back a callable, an `NdArrayNode` of a scalar type and a `DictNode`'s key types are called with
stored values. So a trusted *prefix* is not enough: `sklearn.utils` holds a function that runs a
Python script it is given, and a reduce node naming it runs that script on load. Trust is
therefore an exact name *and* the node kind that may carry it:

* `ObjectNode`: the estimators `pipeline.factory` may build (`ESTIMATORS`), the preprocessing
  steps it builds (`PREPROCESSING`), and what those hold once fitted (`FITTED_PARTS`: trees,
  losses, links, distance metrics, optimisers, label encoders, ...);
* reduce nodes: `sklearn.tree._tree.Tree` (`TreeNode`) and scikit-learn's loss functions
  (`LossNode`, `LOSSES`), plain numeric classes with no side effects;
* numpy: arrays, dtypes, numeric scalar types, `RandomState` and `Generator` (with a real bit
  generator);
* containers (`dict`, `list`, `tuple`, `slice`) and JSON values;
* nothing else: no function, method, `functools.partial`, `operator` getter, `defaultdict`, set,
  bytes, sparse matrix, masked array, or a constructor node, whatever it names.

The lists are what the project's pipelines contain (`tests/test_model_types.py` fits every
allow-listed estimator family, with the hyperparameters that change what a fitted model holds,
and every preprocessing option, and loads each back), so they cannot fall behind the factory. A
project that registers its own estimator (`pipeline.factory.register`) trusts it, and the
fitted parts it names, here too. A model that holds anything else cannot be written
(`pipeline.io.save_model`) or packaged, and is refused on load, naming the file and the type.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

# The estimators `pipeline.factory.ALLOWED_TARGETS` names, as skops records them (the module
# that defines the class). tests/test_model_types.py checks the two lists are the same.
ESTIMATORS: frozenset[str] = frozenset(
    {
        "sklearn.dummy.DummyClassifier",
        "sklearn.dummy.DummyRegressor",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.ensemble._forest.ExtraTreesRegressor",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.ensemble._gb.GradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._weight_boosting.AdaBoostClassifier",
        "sklearn.ensemble._weight_boosting.AdaBoostRegressor",
        "sklearn.linear_model._base.LinearRegression",
        "sklearn.linear_model._coordinate_descent.ElasticNet",
        "sklearn.linear_model._coordinate_descent.Lasso",
        "sklearn.linear_model._glm.glm.PoissonRegressor",
        "sklearn.linear_model._huber.HuberRegressor",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._ridge.Ridge",
        "sklearn.linear_model._ridge.RidgeClassifier",
        "sklearn.linear_model._stochastic_gradient.SGDClassifier",
        "sklearn.linear_model._stochastic_gradient.SGDRegressor",
        "sklearn.naive_bayes.GaussianNB",
        "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.neighbors._regression.KNeighborsRegressor",
        "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
        "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
        "sklearn.svm._classes.LinearSVC",
        "sklearn.svm._classes.LinearSVR",
        "sklearn.svm._classes.SVC",
        "sklearn.svm._classes.SVR",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.DecisionTreeRegressor",
    }
)

# What `pipeline.factory.build_preprocessor` builds: the column transformer, its per-type
# pipelines, imputers (and their missing-value indicators), scalers, encoders, and the
# project's date expander.
PREPROCESSING: frozenset[str] = frozenset(
    {
        "sklearn.pipeline.Pipeline",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.impute._base.MissingIndicator",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._data.RobustScaler",
        "sklearn.preprocessing._data.MinMaxScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._encoders.OrdinalEncoder",
        "pipeline.transformers.DateTimeExpander",
    }
)

# What the estimators hold once fitted (ensembles' member trees, boosting's losses and links,
# histogram boosting's binning and predictors, neighbours' search trees and metrics, the
# networks' optimisers, label encoders).
FITTED_PARTS: frozenset[str] = frozenset(
    {
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.tree._classes.ExtraTreeRegressor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn._loss.link.HalfLogitLink",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogLink",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.loss.AbsoluteError",
        "sklearn._loss.loss.ExponentialLoss",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfGammaLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfPoissonLoss",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.loss.HuberLoss",
        "sklearn._loss.loss.PinballLoss",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.preprocessing._label.LabelBinarizer",
        "sklearn.preprocessing._label.LabelEncoder",
    }
)

# Classes a reduce node calls with stored arguments: scikit-learn's Cython loss functions.
LOSSES: frozenset[str] = frozenset(
    {
        "sklearn._loss._loss.CyAbsoluteError",
        "sklearn._loss._loss.CyExponentialLoss",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfGammaLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss._loss.CyHalfPoissonLoss",
        "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn._loss._loss.CyHuberLoss",
        "sklearn._loss._loss.CyPinballLoss",
        "sklearn.linear_model._sgd_fast.EpsilonInsensitive",
        "sklearn.linear_model._sgd_fast.Hinge",
        "sklearn.linear_model._sgd_fast.ModifiedHuber",
        "sklearn.linear_model._sgd_fast.SquaredEpsilonInsensitive",
        "sklearn.linear_model._sgd_fast.SquaredHinge",
    }
)
TREE = "sklearn.tree._tree.Tree"

# numpy's numeric scalar types: an array node of one of them, or a dict key type, calls the type
# with a stored value, which only ever makes a number.
NUMPY_SCALARS: frozenset[str] = frozenset(
    f"numpy.{name}"
    for name in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    )
)
PYTHON_SCALARS: frozenset[str] = frozenset(
    {"builtins.str", "builtins.int", "builtins.float", "builtins.bool"}
)
# numpy's bit generators, by the name numpy stores in a Generator's state (skops calls it).
BIT_GENERATORS: frozenset[str] = frozenset({"MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64"})

# Registered by `pipeline.factory.register` (a reviewed code change, never config).
_REGISTERED: set[str] = set()


def trust(*names: str) -> None:
    """Trust more classes as objects in model files: a project's own estimator and the fitted
    parts it holds, by the name skops records (`module.Class`, the defining module)."""
    for name in names:
        if "." not in name:
            raise ValueError(f"{name!r} is not a module.Class name")
    _REGISTERED.update(names)


def objects() -> frozenset[str]:
    """Every class an `ObjectNode` may instantiate."""
    return ESTIMATORS | PREPROCESSING | FITTED_PARTS | frozenset(_REGISTERED)


def _allowed(loader: str) -> frozenset[str] | None:
    """The exact names a node kind may carry; None for a node kind that is always refused."""
    return {
        "ObjectNode": objects(),
        "TreeNode": frozenset({TREE}),
        "LossNode": LOSSES,
        "NdArrayNode": NUMPY_SCALARS | {"numpy.ndarray"},
        "DTypeNode": frozenset({"numpy.dtype"}),
        "TypeNode": PYTHON_SCALARS | NUMPY_SCALARS,
        "RandomStateNode": frozenset({"numpy.random.mtrand.RandomState"}),
        "RandomGeneratorNode": frozenset({"numpy.random._generator.Generator"}),
        "DictNode": frozenset({"builtins.dict"}),
        "ListNode": frozenset({"builtins.list"}),
        "TupleNode": frozenset({"builtins.tuple"}),
        "SliceNode": frozenset({"builtins.slice"}),
    }.get(loader)


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every dict of the schema that skops may read as a node (any dict with `__loader__`),
    wherever it sits: a walk of the whole JSON, not of the node kinds we know, so a node hidden
    under an unusual key is still seen."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _bit_generator(node: dict[str, Any]) -> str | None:
    """The bit generator name a Generator node stores (skops calls `numpy.random.<name>`)."""
    try:
        state = node["content"]["bit_generator"]["content"]["bit_generator"]
        name = json.loads(state["content"])
    except (KeyError, TypeError, ValueError):
        return None
    return name if isinstance(name, str) else None


def refused(schema: Any) -> list[str]:
    """What a skops `schema.json` holds that the project does not trust, each as
    `<module.name> (<node kind>)`, sorted; empty when the file may be loaded."""
    out: set[str] = set()
    kinds: dict[str, str] = {}  # name -> first node kind seen, for CachedNode
    nodes = list(_nodes(schema))
    for node in nodes:
        loader, module, name = (node.get(k) for k in ("__loader__", "__module__", "__class__"))
        if not (isinstance(loader, str) and isinstance(module, str) and isinstance(name, str)):
            out.add(f"{module}.{name} (malformed {loader!r} node)")
            continue
        full = f"{module}.{name}"
        if loader in ("JsonNode", "CachedNode"):
            continue  # JSON is parsed, never imported; a cached node is checked below
        allowed = _allowed(loader)
        if allowed is None or full not in allowed:
            out.add(f"{full} ({loader})")
            continue
        kinds.setdefault(full, loader)
        if loader == "RandomGeneratorNode" and _bit_generator(node) not in BIT_GENERATORS:
            out.add(f"numpy.random.{_bit_generator(node)} (bit generator of {full})")
    for node in nodes:
        # A cached node stands for an object loaded earlier in the file; it must name one the
        # file holds under a trusted kind.
        if node.get("__loader__") == "CachedNode":
            full = f"{node.get('__module__')}.{node.get('__class__')}"
            if full not in kinds:
                out.add(f"{full} (CachedNode)")
    return sorted(out)


def names(schema: Any) -> list[str]:
    """Every `module.name` a (trusted) schema holds: what skops is told to trust."""
    found = {
        f"{node['__module__']}.{node['__class__']}"
        for node in _nodes(schema)
        if node.get("__loader__") not in ("JsonNode", None)
    }
    for node in _nodes(schema):
        if node.get("__loader__") == "RandomGeneratorNode":
            found.add(f"numpy.random.{_bit_generator(node)}")
    return sorted(found)
