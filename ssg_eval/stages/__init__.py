"""The stage entry points: sample, features, metrics, report, and the pipeline and suite drivers.

Each module is a Hydra CLI (`python -m ssg_eval.stages.<stage>`, console script `ssg-<stage>`) that
goes through the run layer (`ssg_eval.runs`); this package holds no sampling or metric math.
"""
