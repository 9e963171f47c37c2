"""Prediction, shared by the gRPC and REST APIs."""

from dataclasses import dataclass

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
)

from components.serving.loaded_models import ServedModel
from components.serving.servables import DEFAULT_SIGNATURE, RequestRefused, dtype_name, invalid, numpy_dtype

# --- prediction, shared by gRPC and REST ------------------------------------------


@dataclass
class PredictResult:
    version: int
    signature_name: str
    outputs: dict[str, np.ndarray]


def resolve_version(spec) -> tuple[int | None, str | None]:
    """The version, or the version label, a ModelSpec asks for (neither: the highest served)."""
    if spec.HasField("version"):
        return spec.version.value, None
    return None, spec.version_label or None


def signature_of(model: ServedModel, signature_name: str) -> meta_graph_pb2.SignatureDef:
    signature = model.servable.signature_defs.get(signature_name)
    if signature is None:
        raise RequestRefused(grpc.StatusCode.FAILED_PRECONDITION,
                           f'Serving signature key "{signature_name}" not found.')
    return signature


def check_inputs(signature: meta_graph_pb2.SignatureDef, inputs: dict[str, np.ndarray]) -> None:
    """Names, dtypes and shapes against the signature, with TF-Serving's wording where it has one."""
    expected, sent = set(signature.inputs), set(inputs)
    if len(sent) != len(expected):
        raise invalid(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - sent))}}}.")
    for index, name in enumerate(sorted(inputs)):
        if name not in expected:
            raise invalid(f"input tensor alias not found in signature: {name}. "
                          f"Inputs expected to be in the set {{{','.join(sorted(expected))}}}.")
        info, value = signature.inputs[name], inputs[name]
        if value.dtype != numpy_dtype(info.dtype):
            got = "string" if value.dtype == object else dtype_name(tf.dtypes.as_dtype(value.dtype).as_datatype_enum)
            raise invalid(f"Expects arg[{index}] to be {dtype_name(info.dtype)} but {got} is provided")
        if not info.tensor_shape.unknown_rank:
            want = [dim.size for dim in info.tensor_shape.dim]
            if len(want) != value.ndim or any(w not in (-1, g) for w, g in zip(want, value.shape, strict=True)):
                raise invalid(f"input '{name}' has shape [{','.join(map(str, value.shape))}] but the "
                              f"signature expects [{','.join(map(str, want))}] (-1: any size)")


def predict(model: ServedModel, signature_name: str, inputs: dict[str, np.ndarray],
            output_filter: list[str]) -> PredictResult:
    signature_name = signature_name or DEFAULT_SIGNATURE
    signature = signature_of(model, signature_name)
    check_inputs(signature, inputs)
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid(f"output tensor alias not found in signature: {alias} Outputs expected to be in "
                          f"the set {{{','.join(sorted(signature.outputs))}}}.")
    if len(set(output_filter)) != len(output_filter):
        raise invalid(f"duplicate output tensor alias: {output_filter}")
    outputs = model.servable.run(signature_name, inputs)
    if output_filter:
        outputs = {alias: outputs[alias] for alias in output_filter}
    return PredictResult(model.version, signature_name, outputs)


def signature_def_map(model: ServedModel) -> get_model_metadata_pb2.SignatureDefMap:
    return get_model_metadata_pb2.SignatureDefMap(signature_def=model.servable.signature_defs)


