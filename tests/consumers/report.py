"""Diagnostic report: what qonnx 1.0's cleanup_model and onnxslim still remove, per corpus model.

Not a test. Run with the project's environment from the project root (needs ../shared and the
consumer environments .venv-qonnx / .venv-onnxslim, or the QONNX_TOOLS_*_PYTHON variables):

    .venv/bin/python tests/consumers/report.py [--json results.json]

Prints Markdown: node counts of the original file, our cleanup, qonnx cleanup_model and onnxslim
(fusions skipped) on both, the same for our ``convert --to qcdq`` output, then every node the
consumers remove from our outputs, described by where its inputs come from.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import _consumer as consumer
from qonnx_tools.testing import shared_dir


def _run(name: str, probe: list[str], script: str, paths: list[Path]) -> dict[str, dict]:
    python = consumer.consumer_python(name, probe)
    if python is None:
        sys.exit(f"no Python for {name}: create .venv-{name} (see tests/consumers/test_*_consumer.py)")
    return consumer.run_consumer(python, script, paths)


def _cell(result: dict | None) -> str:
    if result is None:
        return "—"
    if not result["ok"]:
        return "ERR"
    after, before = result["after"]["nodes"], result["before"]["nodes"]
    def ops(counter: dict) -> str:
        return "+".join(f"{n}×{k}" for k, n in counter.items())

    text = str(after) if after == before else f"**{after}** (−{ops(result['removed_ops'])})"
    if result["added_ops"]:
        text += f" (+{ops(result['added_ops'])})"
    if any("constant folding failed" in note for note in result.get("notes", [])):
        text += " ᶠ"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write all raw results to this file")
    args = parser.parse_args(argv)
    root = shared_dir()
    if root is None:
        sys.exit("../shared is not present")
    rels, qcdq_rels = consumer.cleanup_corpus(), consumer.qcdq_corpus()
    originals = {rel: root / "models" / rel for rel in rels}
    with tempfile.TemporaryDirectory() as tmp:
        for sub in ("cleanup", "qcdq"):
            (Path(tmp) / sub).mkdir()
        ours = consumer.build(Path(tmp) / "cleanup", rels, consumer.cleaned)
        qcdq = consumer.build(Path(tmp) / "qcdq", qcdq_rels, consumer.converted_qcdq)
        built = [p for p in (*ours.values(), *qcdq.values()) if isinstance(p, Path)]
        files = [*originals.values(), *built]
        qonnx = _run("qonnx", ["qonnx.util.cleanup", "onnxruntime"], "qonnx_cleanup.py", files)
        slim = _run("onnxslim", ["onnxslim", "onnxruntime"], "onnxslim_run.py", files)

    def get(results, path):
        return results.get(str(path)) if isinstance(path, Path) else None

    raw = {}
    print("| model | original | qonnx cleanup on original | onnxslim on original | our cleanup | "
          "qonnx cleanup on ours | onnxslim on ours |")
    print("|---|---|---|---|---|---|---|")
    for rel in rels:
        q_orig, s_orig = get(qonnx, originals[rel]), get(slim, originals[rel])
        q_ours, s_ours = get(qonnx, ours[rel]), get(slim, ours[rel])
        ours_nodes = q_ours["before"]["nodes"] if q_ours else ("ERR" if isinstance(ours[rel], str) else "?")
        print(f"| {rel} | {q_orig['before']['nodes']} | {_cell(q_orig)} | {_cell(s_orig)} | {ours_nodes} | "
              f"{_cell(q_ours)} | {_cell(s_ours)} |")
        raw[rel] = {"qonnx_on_original": q_orig, "onnxslim_on_original": s_orig, "qonnx_on_ours": q_ours,
                    "onnxslim_on_ours": s_ours, "our_error": ours[rel] if isinstance(ours[rel], str) else None}
    print("\nᶠ onnxslim's constant folding failed (custom-domain node in the constant subgraph): nothing folded.\n")
    print("| model (qonnx.onnx → our convert --to qcdq) | original | our qcdq | onnxslim on our qcdq |")
    print("|---|---|---|---|")
    for rel in qcdq_rels:
        s_q = get(slim, qcdq[rel])
        q_nodes = s_q["before"]["nodes"] if s_q else "ERR"
        print(f"| {rel} | {qonnx[str(originals[rel])]['before']['nodes']} | {q_nodes} | {_cell(s_q)} |")
        raw[rel]["onnxslim_on_our_qcdq"] = s_q
        raw[rel]["our_qcdq_error"] = qcdq[rel] if isinstance(qcdq[rel], str) else None

    print("\n## What the consumers remove from our outputs\n")
    for rel, entry in raw.items():
        for key in ("qonnx_on_ours", "onnxslim_on_ours", "onnxslim_on_our_qcdq"):
            result = entry.get(key)
            if result and (not result["ok"] or result["removed_ops"] or result["added_ops"]):
                print(f"### {rel} — {key}\n```")
                print(result.get("error") or consumer.removal_message(result))
                print("```")
        for key in ("our_error", "our_qcdq_error"):
            if entry.get(key):
                print(f"### {rel} — {key}\n```\n{entry[key]}\n```")
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
