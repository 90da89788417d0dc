"""The command-line stages and their run-level file handling.

A stage module is named after its command (`sample`, `features`, `metrics`, `report`, `pipeline`,
`suite`: console script `ssg-<name>`, or `python -m ssg_eval.stages.<name>`); the others hold what
those commands do with a run's files (`dinov2`, `spectral_bands`, `preflight`, `tuned`). Everything
goes through the run layer (`ssg_eval.runs`); this package holds no sampling or metric math.
"""
