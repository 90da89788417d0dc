"""The results report of finished runs: tables, their files, the HTML page and its assets.

`table` collects each run's `manifest.json` + `metrics.json` into tables, `render` writes them as
CSV/Markdown (+ the β-sweep plot), `page` renders `index.html`, `grids` draws paired sample grids
and `assets` gathers the page's band deltas, grids and figures from the runs. It never recomputes
a metric; the `ssg-report` command is `ssg_eval.stages.report`.
"""
