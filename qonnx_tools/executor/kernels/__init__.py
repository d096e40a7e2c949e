"""Standard ONNX kernels, one module per op family, listed explicitly (as onnx.reference's
``_op_list.py`` does): importing a module registers its kernels with the executor registry."""

from qonnx_tools.executor.kernels import (  # noqa: F401  (imported for their registrations)
    activations,
    conv,
    elementwise,
    linalg,
    normalization,
    padding,
    pooling,
    quantize_linear,
    reductions,
    resize,
    shape_ops,
    space,
)
