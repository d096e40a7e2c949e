"""Run many ``qonnx`` command lines in a few interpreters instead of one process each.

Starting the CLI costs about 3 s of imports here (onnx alone imports ml_dtypes, 1.3 s),
so a corpus of a few hundred (case, command) runs as separate processes takes ten
minutes on two cores. This driver runs a list of argument vectors through the CLI's own
entry point, ``qonnx_tools.cli.main.main``, in one child interpreter per worker, with
``sys.stdout``/``sys.stderr`` captured per run; the exit code is what ``main`` returns
(or what argparse exits with). What it does not see: output written to the file
descriptors by native code, and process-level effects (signals, a closed pipe); those
have their own subprocess tests (tests/cli). ``test_hostile.py`` also runs a sample of
its jobs as real processes and requires the same results.

    python cli_batch.py < jobs.json > results.json   # jobs: a JSON list of argv lists
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def run_batch(argvs: list[list[str]], *, workers: int = 2, timeout: float = 1800) -> list[Result]:
    """Run every argv (without the leading ``qonnx``); results in the same order."""
    if not argvs:
        return []
    chunks = [argvs[i::workers] for i in range(workers)]

    def run(chunk: list[list[str]]) -> list[dict]:
        if not chunk:
            return []
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve())],
            input=json.dumps(chunk), capture_output=True, text=True, timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"cli_batch driver failed ({done.returncode}): {done.stderr[-2000:]}")
        return json.loads(done.stdout)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(run, chunks))
    results: list[Result | None] = [None] * len(argvs)
    for worker, part in enumerate(parts):
        for k, item in enumerate(part):
            results[worker + k * workers] = Result(**item)
    return results  # type: ignore[return-value]


def _run_one(argv: list[str]) -> dict:
    from qonnx_tools.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors (2) and --help (0)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        except BaseException:  # main lets nothing but these escape; record it as a crash, visibly
            traceback.print_exc()
            code = -1
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def _driver() -> int:
    jobs = json.load(sys.stdin)
    real_stdout = sys.stdout
    results = [_run_one(argv) for argv in jobs]
    json.dump(results, real_stdout)
    return 0


if __name__ == "__main__":
    sys.exit(_driver())
