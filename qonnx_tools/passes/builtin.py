"""The built-in passes, listed explicitly (as onnx's reference ``_op_list.py`` lists its kernels).

``base`` registers these classes by their ``name`` the first time a pass is looked up.
A pass of one's own is registered with ``@register_pass`` (transforms/custom_pass_example.py).
"""

from qonnx_tools.passes.absorb_transpose_into_matmul import AbsorbTransposeIntoMatMul
from qonnx_tools.passes.activations_to_uint8 import ActivationsToUint8
from qonnx_tools.passes.batchnorm_to_affine import BatchNormToAffine
from qonnx_tools.passes.bipolar_weights_to_int2 import BipolarWeightsToInt2
from qonnx_tools.passes.change_batch_size import ChangeBatchSize
from qonnx_tools.passes.cleanup import Cleanup
from qonnx_tools.passes.dedupe_initializers import DedupeInitializers
from qonnx_tools.passes.dequantize_rescaled_constants import DequantizeRescaledConstants
from qonnx_tools.passes.div_to_mul import DivToMul
from qonnx_tools.passes.explicit_default_attributes import ExplicitDefaultAttributes
from qonnx_tools.passes.extract_conv_bias import ExtractConvBias
from qonnx_tools.passes.factor_out_weight_scale import FactorOutWeightScale
from qonnx_tools.passes.fold_batchnorm_into_qdq import FoldBatchnormIntoQdq
from qonnx_tools.passes.fold_constants import FoldConstants
from qonnx_tools.passes.fold_transpose_into_initializer import FoldTransposeIntoInitializer
from qonnx_tools.passes.gemm_to_matmul import GemmToMatMul
from qonnx_tools.passes.infer_datatypes import InferDatatypes
from qonnx_tools.passes.infer_shapes import InferShapes
from qonnx_tools.passes.merge_reshapes import MergeReshapes
from qonnx_tools.passes.move_into_integer_domain import MoveIntoIntegerDomain
from qonnx_tools.passes.move_transpose_into_weight_quant import MoveTransposeIntoWeightQuant
from qonnx_tools.passes.name_nodes import NameNodes
from qonnx_tools.passes.opset_upgrade import OpsetUpgrade
from qonnx_tools.passes.pad_attrs_to_inputs import PadAttrsToInputs
from qonnx_tools.passes.positive_batchnorm_before_sign import PositiveBatchnormBeforeSign
from qonnx_tools.passes.remove_dead import RemoveDead
from qonnx_tools.passes.remove_identity import RemoveIdentity
from qonnx_tools.passes.remove_noop_arith import RemoveNoopArith
from qonnx_tools.passes.remove_relu_before_quantize import RemoveReluBeforeQuantize
from qonnx_tools.passes.remove_static_inputs import RemoveStaticInputs
from qonnx_tools.passes.sanitize_names import SanitizeNames
from qonnx_tools.passes.sort import Sort
from qonnx_tools.passes.sub_to_add import SubToAdd
from qonnx_tools.passes.tidy import Tidy
from qonnx_tools.passes.to_channels_first import ToChannelsFirst
from qonnx_tools.passes.to_channels_last import ToChannelsLast
from qonnx_tools.passes.uint8_codes_to_int8 import Uint8CodesToInt8
from qonnx_tools.passes.unshare_initializers import UnshareInitializers
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
    PadAttrsToInputs, OpsetUpgrade, ChangeBatchSize, SubToAdd, DivToMul, GemmToMatMul, ExtractConvBias,
    BatchNormToAffine, FoldTransposeIntoInitializer, MoveTransposeIntoWeightQuant, AbsorbTransposeIntoMatMul,
    ToChannelsLast, ToChannelsFirst, MoveIntoIntegerDomain, ActivationsToUint8,
    FoldBatchnormIntoQdq, RemoveReluBeforeQuantize, Uint8CodesToInt8,
    BipolarWeightsToInt2, PositiveBatchnormBeforeSign, DequantizeRescaledConstants, FactorOutWeightScale,
    ExplicitDefaultAttributes,
    # streamlining (qonnx_tools.streamline)
    FoldWeightQuant, QuantToMultiThreshold, TruncToMultiThreshold, AvgPoolToSumPool, QonnxToFinn,
    AbsorbIntoMultiThreshold, AbsorbAddIntoMultiThreshold, AbsorbMulIntoMultiThreshold, AbsorbReluIntoMultiThreshold,
    AbsorbSignMulIntoLinear, RoundThresholds, SignToThreshold, CollapseRepeatedOps, FactorOutMulSign,
    MoveMulPastLinear, MoveAddPastLinear, MovePastMaxPool, MovePastReshape, MoveAddPastMul,
    MoveScalePastJoin, MoveScalePastSplit, Streamline,
)
