"""Finding beta: paired, budgeted successive halving over SSG settings (`python -m ssg_eval.tune`).

`space` declares candidates, `halving` decides, `evaluate` runs them through the stages, `report`
writes the outputs and `apply` feeds the result to Table 1; see docs/TUNING.md.
"""
