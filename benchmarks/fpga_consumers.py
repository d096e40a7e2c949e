"""hls4ml and FINN on real models: ``prepare`` (this project) against the consumers' own documented recipes.

Run by hand (needs ../shared and the consumer venvs of README "FPGA targets"; each missing venv skips
its columns): ``python benchmarks/fpga_consumers.py [--extra 24] [MODEL ...]``. Prints the markdown
table of README's FPGA section. Compiling the C++ emulations takes a few minutes.

For each model (its io.npz input, when it has one, plus ``--extra`` seeded samples uniform in [0, 1)):

* hls4ml, ours: ``prepare --target hls4ml`` with its per-layer precisions (tests/consumers/hls4ml_emulate.py);
  hls4ml, qonnx recipe: the original file through qonnx's cleanup, ConvertToChannelsLastAndClean,
  GemmToMatMul, cleanup and hls4ml's default ``fixed<16,6>`` configuration (hls4ml_qonnx_recipe.py).
  Both C++ emulations (g++) are compared with our executor on the *original* model: top-1 agreement and
  max |difference|, or the stage that failed.
* FINN, ours: ``prepare --target finn`` then FINN's step_tidy_up, step_streamline, step_convert_to_hw;
  FINN, own: the original file through FINN's own front end (step_qonnx_to_finn first,
  ``finn_convert_to_hw.py --from-qonnx``). "ready" = every node became a hardware layer except the input
  Transpose FINN leaves on the host by design.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("consumers_helper", ROOT / "tests/consumers/_consumer.py")
consumer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(consumer)

MODELS = [
    "qonnx-model-zoo/tfc/TFC_1W1A.onnx", "qonnx-model-zoo/tfc/TFC_2W2A.onnx", "qonnx-model-zoo/kws/kwsmlp_w3a3.onnx",
    "qonnx-model-zoo/jet_tagging/qkeras_jettagging.onnx", "brevitas/bnn_tfc_1w1a/qonnx.onnx",
    "brevitas/bnn_tfc_2w2a/qonnx.onnx", "brevitas/bnn_sfc_1w2a/qonnx.onnx", "brevitas/binary_ternary/qonnx.onnx",
    "brevitas/maxpool_quanttensor/qonnx.onnx", "brevitas/residual_shared_quant/qonnx.onnx",
    "brevitas/bnn_cnv_2w2a/qonnx.onnx",
]
FINN_MODELS = {"qonnx-model-zoo/tfc/TFC_1W1A.onnx", "qonnx-model-zoo/tfc/TFC_2W2A.onnx",
               "qonnx-model-zoo/kws/kwsmlp_w3a3.onnx", "brevitas/bnn_tfc_1w1a/qonnx.onnx",
               "brevitas/bnn_tfc_2w2a/qonnx.onnx", "brevitas/bnn_sfc_1w2a/qonnx.onnx", "brevitas/bnn_cnv_2w2a/qonnx.onnx"}


def _hls4ml_cell(record: dict | None, reference: np.ndarray) -> str:
    if record is None:
        return "–"
    if not record["ok"]:
        return "✗ " + record["error"].split("\n")[0][:90]
    got = consumer.consumer_outputs(record)["output"].astype(np.float64)[: len(reference)]
    if got.shape != reference.shape:
        return f"✗ output shape {got.shape} vs {reference.shape}"
    agree = int((got.argmax(-1) == reference.argmax(-1)).sum())
    return f"✓ top-1 {agree}/{len(reference)}, max Δ {np.abs(got - reference).max():.2g}"


def _finn_cell(record: dict | None) -> str:
    if record is None:
        return "–"
    if not record["ok"]:
        return f"✗ {record.get('stage', '')}: {record['error'].splitlines()[0][:80]}"
    left = [n for n in record["left"]
            if not (n["op_type"] == "Transpose" and n["index"] == 0 and n["reads_graph_input"])]
    if left:
        kinds = sorted({n["op_type"] for n in left})
        return f"✗ {len(left)} node(s) left: {', '.join(kinds)}"
    return f"✓ {len(record['hw'])} hardware layers"


def _run(python: str | None, script: str, paths: list[Path], *flags: str) -> dict[str, dict]:
    if python is None or not paths:
        return {}
    run = subprocess.run([python, str(ROOT / "tests/consumers" / script), *flags, *map(str, paths)],
                         capture_output=True, text=True)
    import json

    return {r["file"]: r for r in (json.loads(line) for line in run.stdout.splitlines() if line.startswith("{"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=MODELS, help="paths relative to ../shared/models")
    parser.add_argument("--extra", type=int, default=24, help="seeded random samples besides io.npz's (default 24)")
    args = parser.parse_args()
    from qonnx_tools.model_io import load, save
    from qonnx_tools.prepare import prepare
    from qonnx_tools.testing import shared_dir

    root = shared_dir() / "models"
    hls4ml = consumer.consumer_python("hls4ml", ["hls4ml", "qonnx"])
    finn = consumer.consumer_python("finn", ["finn", "qonnx"])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = []
        for rel in args.models:
            name = rel.replace("/", "__").removesuffix(".onnx")
            source = root / rel
            x = consumer.samples(load(source), source.parent / "io.npz", args.extra)
            ours = consumer.stage_hls4ml(folder, source, name, x)
            (folder / "recipe").mkdir(exist_ok=True)
            recipe = consumer.stage_original(folder / "recipe", source, name, x)
            finn_ours = finn_own = None
            if rel in FINN_MODELS:
                model = load(source)
                prepare(model, "finn")
                (folder / "finn").mkdir(exist_ok=True)
                finn_ours = save(model, folder / "finn" / f"{name}.onnx")
                (folder / "finn_own").mkdir(exist_ok=True)
                finn_own = folder / "finn_own" / f"{name}.onnx"
                finn_own.write_bytes(source.read_bytes())
            rows.append((rel, ours, recipe, finn_ours, finn_own))
            print(f"staged {rel}", file=sys.stderr)
        ours_runs = _run(hls4ml, "hls4ml_emulate.py", [r[1]["path"] for r in rows])
        recipe_runs = _run(hls4ml, "hls4ml_qonnx_recipe.py", [r[2] for r in rows])
        finn_ours_runs = _run(finn, "finn_convert_to_hw.py", [r[3] for r in rows if r[3] is not None])
        finn_own_runs = _run(finn, "finn_convert_to_hw.py", [r[4] for r in rows if r[4] is not None], "--from-qonnx")
        print("| model | hls4ml, `prepare --target hls4ml` | hls4ml, qonnx recipe | FINN, `prepare --target finn` "
              "| FINN's own front end |")
        print("|---|---|---|---|---|")
        for rel, ours, recipe, finn_ours, finn_own in rows:
            reference = ours["original"]
            ready = "" if ours["result"].ready else " (prepare: not ready)"
            print(f"| {rel} | {_hls4ml_cell(ours_runs.get(str(ours['path'])), reference)}{ready} "
                  f"| {_hls4ml_cell(recipe_runs.get(str(recipe)), reference)} "
                  f"| {_finn_cell(finn_ours_runs.get(str(finn_ours))) if finn_ours else 'not a FINN model here'} "
                  f"| {_finn_cell(finn_own_runs.get(str(finn_own))) if finn_own else '–'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
