"""Monitoring: the drift statistics engine and the stages built on it.

Modules (import them directly; this package imports nothing on its own):

* stages (each `python -m pipeline.monitor.<module>`, see dvc.yaml):
  :mod:`~pipeline.monitor.simulate` (production windows with declared drift scenarios),
  :mod:`~pipeline.monitor.stage` (every window's verdict, reports and history)
* verdicts: :mod:`~pipeline.monitor.windowing` (window files -> monitoring windows),
  :mod:`~pipeline.monitor.compat` (whether the monitored bundle can judge this traffic),
  :mod:`~pipeline.monitor.assess` (one window's checks and status),
  :mod:`~pipeline.monitor.engine` (assess every window, write the reports; shared with
  `mlops monitor --input` in :mod:`~pipeline.monitor.manual`)
* outputs: :mod:`~pipeline.monitor.report` (report.json, metrics.json, history.csv),
  :mod:`~pipeline.monitor.html` (report.html)
* inputs: :class:`~pipeline.params.MonitorSettings` (typed `monitor` params),
  :mod:`~pipeline.monitor.task_metrics` (the metrics a window is judged on and the headline),
  :mod:`~pipeline.monitor.monitored_bundle` (the monitored bundle and the drift reference it
  carries, read through the foundation :mod:`pipeline.bundle_format`); where artifacts live is the
  foundation :mod:`pipeline.paths`
* statistics: :mod:`pipeline.monitor.drift` - ``compute_drift`` (exact or sketch mode; every
  drift name is importable from it), built from :mod:`~pipeline.monitor.drift_methods` (the
  method registry), :mod:`~pipeline.monitor.drift_checks` (what the settings schema cannot
  judge), :mod:`~pipeline.monitor.drift_results` (column and dataset verdicts) and
  :mod:`~pipeline.monitor.drift_evaluation` (one column; exact mode);
  :mod:`pipeline.monitor.sketch` - bounded-memory ``compute_drift_parquet``;
  :mod:`pipeline.monitor.stats`, :mod:`~pipeline.monitor.bounds` - the statistics and the
  sketches' error bounds. The reference they compare with (``build_reference``, ``Reference``,
  the quantile sketch) is the foundation package :mod:`pipeline.profile`, since `package`
  writes it into every bundle.
"""

__all__ = [
    "assess",
    "bounds",
    "compat",
    "drift",
    "drift_checks",
    "drift_evaluation",
    "drift_methods",
    "drift_results",
    "engine",
    "html",
    "manual",
    "monitored_bundle",
    "report",
    "simulate",
    "sketch",
    "stage",
    "stats",
    "task_metrics",
    "windowing",
]
