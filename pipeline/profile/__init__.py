"""Profiles of data for drift monitoring: a foundation shared by the deploy and monitor layers.

* :mod:`~pipeline.profile.reference` - the drift reference (``training_reference``,
  ``build_reference``, ``Reference.save`` / ``Reference.load``) and which columns it covers
  (``monitored_columns``). `package` writes it into every bundle; monitoring reads it from the
  bundle it judges, so a release is always judged against its own training data.
* :mod:`~pipeline.profile.sample` - the forms a column takes (``Sample``, ``Frequencies``).
* :mod:`~pipeline.profile.quantile` - the deterministic quantile sketch.
* :mod:`~pipeline.profile.layout` - the reference's files, and where a bundle keeps them (light:
  no numpy, for the deploy layer's bundle format).

It imports no stage package (an import-linter contract in pyproject.toml).
"""

__all__ = ["layout", "quantile", "reference", "sample"]
