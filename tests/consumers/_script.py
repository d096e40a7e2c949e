"""The main loop of the scripts run inside a consumer's own environment (needs only the stdlib).

Each script turns one model file into a dict; ``report_each`` prints one JSON line per file
(``file``, ``ok`` and the dict, or ``error`` with what the consumer raised) and keeps the
consumer's own prints on stderr, so stdout carries only the results.
"""

import json
import sys
import warnings


def report_each(paths, work) -> int:
    warnings.filterwarnings("ignore")
    for path in paths:
        stdout = sys.stdout
        sys.stdout = sys.stderr
        try:
            result = {"file": path, "ok": True, **work(path)}
        except Exception as exc:  # the test reports what the consumer said
            result = {"file": path, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            sys.stdout = stdout
        print(json.dumps(result), flush=True)
    return 0
