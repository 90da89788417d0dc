"""Run one console script's `main()` once per planted exception and record how it ended.

`python tests/cli_planting.py SPEC.json OUT.json`: SPEC names the script's module and main, the
library function to replace (`target`, `module:attribute`), the argv and the exceptions to plant
(`KeyError`, ... or a class of `ssg_eval.errors`). For each one the function is replaced by one that
raises it, `main()` runs with that argv exactly as the console script would, and the exit code plus
everything written to file descriptor 2 (tracebacks, log lines, the one-line error) go to OUT.json.
One process serves every kind, so a script's import cost is paid once.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import sys
import tempfile


def _exception(kind: str) -> BaseException:
    if hasattr(builtins, kind):
        return getattr(builtins, kind)(f"planted {kind} from library code")
    import ssg_eval.errors

    return getattr(ssg_eval.errors, kind)(f"planted {kind}: the message names the fix")


def _run(main, argv: list[str], prog: str) -> tuple[object, str]:
    """Exit code of `main()` under `argv` and what it wrote to fd 2."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_argv, saved_fd = sys.argv, os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        sys.argv = [prog, *argv]
        try:
            code = main()
        except SystemExit as done:
            code = done.code
        finally:
            sys.stderr.flush()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            sys.argv = saved_argv
        capture.seek(0)
        return code, capture.read().decode("utf-8", "replace")


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    module = importlib.import_module(spec["module"])
    main_fn = getattr(module, spec.get("main", "main"))
    target_module, attribute = spec["target"].split(":")
    owner = importlib.import_module(target_module)
    results = {}
    for kind in spec["kinds"]:
        planted = _exception(kind)

        def raise_planted(*args, _planted=planted, **kwargs):
            raise _planted

        setattr(owner, attribute, raise_planted)
        code, stderr = _run(main_fn, spec["argv"], spec["prog"])
        results[kind] = {"code": code, "stderr": stderr}
    with open(sys.argv[2], "w") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main()
