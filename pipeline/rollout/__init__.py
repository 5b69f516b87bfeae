"""Progressive delivery: the analysis that judges a rollout step from the prediction log, and
the command that turns its verdict into the next reviewable change of `deploy/<target>.json`.

It sits above deploy and monitor (like maintenance): it reads the service's log format
(`pipeline.deploy.service.predlog`), compares the two models' predictions with monitoring's
drift statistics (`pipeline.monitor.stats`) and steps the rollout through
`pipeline.deploy.rollout`.
"""
