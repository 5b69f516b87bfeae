"""The monitor stage's statistics: drift references, exact and sketched drift tests.

Modules (import them directly; this package imports nothing on its own):

* :mod:`pipeline.monitor.reference` - ``build_reference`` / ``Reference.save`` / ``Reference.load``
* :mod:`pipeline.monitor.drift` - method registry, ``DriftSettings``, ``compute_drift``
* :mod:`pipeline.monitor.sketch` - bounded-memory ``compute_drift_parquet``
* :mod:`pipeline.monitor.stats`, :mod:`~pipeline.monitor.quantile`, :mod:`~pipeline.monitor.bounds`
  - the statistics, the quantile sketch and its error bounds
"""

__all__ = ["bounds", "drift", "quantile", "reference", "sketch", "stats"]
