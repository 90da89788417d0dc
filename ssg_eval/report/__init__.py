"""Report stage: run artifacts -> CSV/Markdown tables and plots."""
