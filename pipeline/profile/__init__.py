"""Profiles of data for drift monitoring: a foundation shared by the deploy and monitor layers.

* :mod:`~pipeline.profile.reference` - the drift reference (``build_reference``,
  ``Reference.save`` / ``Reference.load``) and which columns it covers (``monitored_columns``).
* :mod:`~pipeline.profile.sample` - the forms a column takes (``Sample``, ``Frequencies``).
* :mod:`~pipeline.profile.quantile` - the deterministic quantile sketch.

It imports no stage package (an import-linter contract in pyproject.toml).
"""

__all__ = ["quantile", "reference", "sample"]
