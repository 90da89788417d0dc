"""ssg_eval: reference harness for Scaled Spatial Guidance on multi-scale VAR models.

Importing the package loads nothing else; every function is reached through its module path
(README "Python API" lists the entry points). This module holds the version only.
"""

from __future__ import annotations

__version__ = "0.1.0"
