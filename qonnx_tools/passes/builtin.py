"""The built-in passes, listed explicitly (as onnx's reference ``_op_list.py`` lists its kernels).

``base`` registers these classes by their ``name`` the first time a pass is looked up.
A pass of one's own is registered with ``@register_pass`` (transforms/custom_pass_example.py).
"""

from qonnx_tools.passes.absorb_transpose_matmul import AbsorbTransposeIntoMatMul
from qonnx_tools.passes.arith_canonical import DivToMul, SubToAdd
from qonnx_tools.passes.attrs_to_inputs import AttrsToInputs
from qonnx_tools.passes.batchnorm_to_affine import BatchNormToAffine
from qonnx_tools.passes.change_batch_size import ChangeBatchSize
from qonnx_tools.passes.channels_last import ToChannelsFirst, ToChannelsLast
from qonnx_tools.passes.cleanup import Cleanup
from qonnx_tools.passes.extract_conv_bias import ExtractConvBias
from qonnx_tools.passes.fold_constants import FoldConstants
from qonnx_tools.passes.fold_transpose_initializer import FoldTransposeIntoInitializer, MoveTransposeIntoWeightQuant
from qonnx_tools.passes.gemm_to_matmul import GemmToMatMul
from qonnx_tools.passes.infer_datatypes import InferDatatypes
from qonnx_tools.passes.infer_shapes import InferShapes
from qonnx_tools.passes.merge_reshapes import MergeReshapes
from qonnx_tools.passes.move_into_integer_domain import MoveIntoIntegerDomain
from qonnx_tools.passes.naming import NameNodes, SanitizeNames
from qonnx_tools.passes.opset_upgrade import OpsetUpgrade
from qonnx_tools.passes.remove_identity import RemoveIdentity, RemoveNoopArith
from qonnx_tools.passes.tidy import DedupeInitializers, RemoveDead, RemoveStaticInputs, Sort, Tidy, UnshareInitializers
from qonnx_tools.streamline.absorb import (
    AbsorbAddIntoMultiThreshold,
    AbsorbIntoMultiThreshold,
    AbsorbMulIntoMultiThreshold,
    AbsorbReluIntoMultiThreshold,
    AbsorbSignMulIntoLinear,
    RoundThresholds,
    SignToThreshold,
)
from qonnx_tools.streamline.collapse import CollapseRepeatedOps, FactorOutMulSign
from qonnx_tools.streamline.frontend import (
    AvgPoolToSumPool,
    FoldStaticShape,
    FoldWeightQuant,
    QonnxToFinn,
    QuantToMultiThreshold,
    TruncToMultiThreshold,
)
from qonnx_tools.streamline.move import MoveAddPastLinear, MoveAddPastMul, MoveMulPastLinear, MovePastMaxPool, MovePastReshape
from qonnx_tools.streamline.pipeline import Streamline
from qonnx_tools.streamline.residual import MoveScalePastJoin, MoveScalePastSplit

BUILTIN_PASSES = (
    # graph hygiene and shapes
    InferShapes, InferDatatypes, Sort, RemoveDead, RemoveStaticInputs, DedupeInitializers, UnshareInitializers,
    RemoveIdentity, RemoveNoopArith, FoldConstants, MergeReshapes, NameNodes, SanitizeNames, Tidy, Cleanup,
    # canonical forms
    AttrsToInputs, OpsetUpgrade, ChangeBatchSize, SubToAdd, DivToMul, GemmToMatMul, ExtractConvBias,
    BatchNormToAffine, FoldTransposeIntoInitializer, MoveTransposeIntoWeightQuant, AbsorbTransposeIntoMatMul,
    ToChannelsLast, ToChannelsFirst, MoveIntoIntegerDomain,
    # streamlining (qonnx_tools.streamline)
    FoldStaticShape, FoldWeightQuant, QuantToMultiThreshold, TruncToMultiThreshold, AvgPoolToSumPool, QonnxToFinn,
    AbsorbIntoMultiThreshold, AbsorbAddIntoMultiThreshold, AbsorbMulIntoMultiThreshold, AbsorbReluIntoMultiThreshold,
    AbsorbSignMulIntoLinear, RoundThresholds, SignToThreshold, CollapseRepeatedOps, FactorOutMulSign,
    MoveMulPastLinear, MoveAddPastLinear, MovePastMaxPool, MovePastReshape, MoveAddPastMul,
    MoveScalePastJoin, MoveScalePastSplit, Streamline,
)
