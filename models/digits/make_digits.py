#!/usr/bin/env python3
"""Train a float MLP on scikit-learn's 8x8 digits and export it to ONNX with skl2onnx.

This makes the files of ``models/digits/`` (a real float classifier, exported by a real
converter, to measure the post-training quantizer on):

* ``digits_mlp.onnx``   -- the classifier. Input ``x``: float32 [N, 64], the 8x8 pixel
  values (0..16 in the data set) divided by 16, so in [0, 1], row-major 8x8 flattened
  as scikit-learn gives them. Output ``probabilities``: float32 [N, 10], the class
  probabilities (Softmax) for digits 0..9 (column k is digit k).
* ``digits_test.npz``   -- the held-out split: ``x`` float32 [450, 64], ``y`` int64 [450].
* ``digits_calib.npz``  -- calibration data: ``x`` = the first 256 rows of the TRAINING
  split (float32 [256, 64]) and their labels ``y`` (int64).
* ``digits_mlp_ref.npz`` -- the zoo reference (models/manifest.toml): ``input:x`` = the
  held-out split, ``output:probabilities`` = scikit-learn's ``predict_proba`` on it
  (computed in float64 by scikit-learn, stored as float32, the model's output dtype);
  qonnx_tools is not involved.

Split: ``train_test_split(test_size=0.25, random_state=0, stratify=y)`` on all 1797
images. Model: ``MLPClassifier(hidden_layer_sizes=(64, 32), activation="relu",
random_state=0, max_iter=1000)`` trained in float64 (it converges well before max_iter;
a ConvergenceWarning is turned into an error).

Export: ``skl2onnx.to_onnx`` with ``{"zipmap": False}`` and target opset 17 for the
ai.onnx domain. skl2onnx also emits a ``label`` output computed by
ArgMax -> ai.onnx.ml ArrayFeatureExtractor (class lookup) -> Reshape -> Cast. The
qonnx-tools executor runs standard ai.onnx ops only, so the graph is cut down to
``x -> probabilities`` with ``onnx.utils.Extractor`` (the label branch and its ``classes``
initializer go; the label is argmax of the probabilities, since the classes are 0..9)
and the then unused ``ai.onnx.ml`` opset import is removed. Nothing else is changed:
the remaining nodes are skl2onnx's own (Cast, MatMul, Add, Relu, Softmax, Identity).

The script checks the exported graph with onnxruntime against ``predict_proba`` (max
abs difference) and prints float top-1 accuracy on the held-out split for scikit-learn
and onnxruntime. It needs scikit-learn, skl2onnx, onnx and onnxruntime, which are NOT
dependencies of qonnx-tools; use a separate venv (never import qonnx_tools here):

    python3 -m venv .venv-sklearn
    .venv-sklearn/bin/pip install scikit-learn skl2onnx onnx onnxruntime
    .venv-sklearn/bin/python models/digits/make_digits.py           # (re)write the files
    .venv-sklearn/bin/python models/digits/make_digits.py --check   # rebuild in memory, compare

Deterministic: fixed seeds, single-threaded BLAS (set below, before numpy loads), the
ONNX file serialized with ``deterministic=True`` and the .npz files written with fixed
zip timestamps, so two runs with the same package versions on the same machine give
byte-identical files. Other BLAS builds or library versions may change the trained
weights in the last bits; ``--check`` then reports which file differs.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # reproducible float sums, and no fight for the CPU

import argparse  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import skl2onnx  # noqa: E402
import sklearn  # noqa: E402
from onnx.utils import Extractor  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

HERE = Path(__file__).resolve().parent
OPSET = 17
N_CALIB = 256
INPUT, OUTPUT = "x", "probabilities"


def load_data():
    """(x_train, x_test, y_train, y_test): pixels / 16 as float32, labels int64."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # k/16 is exact in float32
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def train(x_train, y_train) -> MLPClassifier:
    clf = MLPClassifier(hidden_layer_sizes=(64, 32), activation="relu", random_state=0, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(x_train.astype(np.float64), y_train)
    return clf


def export(clf: MLPClassifier) -> onnx.ModelProto:
    """skl2onnx export, cut to x -> probabilities, standard ai.onnx ops only."""
    full = to_onnx(
        clf,
        initial_types=[(INPUT, FloatTensorType([None, 64]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": OPSET, "ai.onnx.ml": 1},
    )
    assert [o.name for o in full.graph.output] == ["label", OUTPUT], [o.name for o in full.graph.output]
    model = Extractor(full).extract_model([INPUT], [OUTPUT])
    used = {n.domain for n in model.graph.node}
    keep = [o for o in model.opset_import if o.domain in used or o.domain in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    # Extractor builds a new ModelProto: carry over the exporter's identification.
    model.ir_version = full.ir_version
    model.producer_name, model.producer_version = full.producer_name, full.producer_version
    model.domain, model.model_version, model.doc_string = full.domain, full.model_version, full.doc_string
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node), "non-standard op left"
    assert [o.domain for o in model.opset_import] == [""] and model.opset_import[0].version == OPSET
    onnx.checker.check_model(model, full_check=True)
    return model


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (np.load reads it) with fixed timestamps, so equal arrays give equal bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            array = io.BytesIO()
            np.lib.format.write_array(array, np.ascontiguousarray(value), allow_pickle=False)
            zf.writestr(info, array.getvalue(), compresslevel=9)
    return buffer.getvalue()


def build() -> dict[str, bytes]:
    x_train, x_test, y_train, y_test = load_data()
    clf = train(x_train, y_train)
    model = export(clf)
    onnx_bytes = model.SerializeToString(deterministic=True)

    proba = clf.predict_proba(x_test.astype(np.float64))  # float64, scikit-learn's own computation
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (ort_proba,) = sess.run([OUTPUT], {INPUT: x_test})
    diff = float(np.max(np.abs(ort_proba.astype(np.float64) - proba)))
    acc_skl = float(np.mean(clf.predict(x_test) == y_test))
    acc_ort = float(np.mean(np.argmax(ort_proba, axis=1) == y_test))
    agree = int(np.sum(np.argmax(ort_proba, axis=1) == np.argmax(proba, axis=1)))

    print(f"scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}, onnx {onnx.__version__}, "
          f"onnxruntime {ort.__version__}, numpy {np.__version__}")
    print(f"train {len(y_train)}, test {len(y_test)}; MLP converged in {clf.n_iter_} iterations "
          f"(final loss {clf.loss_:.6f})")
    print(f"ops: {', '.join(n.op_type for n in model.graph.node)}")
    print(f"onnxruntime vs predict_proba on the test split: max abs diff {diff:.3g}; "
          f"top-1 agrees on {agree}/{len(y_test)}")
    print(f"float top-1 accuracy on the held-out split: scikit-learn {acc_skl:.4f} "
          f"({int(round(acc_skl * len(y_test)))}/{len(y_test)}), onnxruntime {acc_ort:.4f}")
    if diff > 1e-5:
        raise SystemExit(f"onnxruntime disagrees with predict_proba (max abs diff {diff:.3g})")

    return {
        "digits_mlp.onnx": onnx_bytes,
        "digits_test.npz": npz_bytes({"x": x_test, "y": y_test}),
        "digits_calib.npz": npz_bytes({"x": x_train[:N_CALIB], "y": y_train[:N_CALIB]}),
        "digits_mlp_ref.npz": npz_bytes({f"input:{INPUT}": x_test, f"output:{OUTPUT}": proba.astype(np.float32)}),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="rebuild in memory and compare with the files on disk")
    args = parser.parse_args(argv)
    files = build()
    bad = 0
    for name, data in files.items():
        path = HERE / name
        digest = hashlib.sha256(data).hexdigest()
        if args.check:
            same = path.is_file() and path.read_bytes() == data
            print(f"{name}: {'identical' if same else 'DIFFERS'} ({digest})")
            bad += not same
        else:
            path.write_bytes(data)
            print(f"{name}: {len(data)} bytes, sha256 {digest}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
