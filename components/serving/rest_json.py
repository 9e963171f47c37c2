"""TF-Serving's REST JSON formats and numpy arrays, both ways: the row ("instances") and
columnar ("inputs") request formats, base64 strings, and the answers ("predictions", "outputs"),
checked and refused with TF-Serving's own messages."""

import base64
import json

import numpy as np
from tensorflow.core.framework import types_pb2

from components.serving.servables import dtype_name, invalid, numpy_dtype

# JSON kinds numpy infers, allowed per target kind (TF-Serving: a float takes any
# number, an integer only integers, a bool only true/false).
ACCEPTED_KINDS = {"f": "fiu", "i": "iu", "u": "iu", "b": "b"}


def snippet(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def dense_shape(value) -> list[int]:
    """The shape a nested list claims, read along the first elements (as TF-Serving does)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def decode_strings(value, where: str):
    if isinstance(value, list):
        return [decode_strings(item, where) for item in value]
    if is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError as error:
            raise invalid(f"{where}: Unable to base64 decode") from error
    if isinstance(value, str):
        return value.encode()
    raise invalid(f"{where}: JSON Value: {snippet(value)} is not of expected type: string")


def json_to_array(value, dtype: int, where: str) -> np.ndarray:
    """A JSON value as a dense tensor of the signature's dtype, or INVALID_ARGUMENT."""
    target = numpy_dtype(dtype)
    shape = dense_shape(value)
    strings = dtype == types_pb2.DT_STRING
    if strings:
        value = decode_strings(value, where)
    try:
        array = np.array(value, dtype=object if strings else None)
    except (ValueError, OverflowError):
        array = None
    if array is None or list(array.shape) != shape or (array.dtype.kind == "O" and not strings):
        raise invalid(f"{where}: JSON Value: {snippet(value)} is not a dense tensor: every list at a level "
                      f"must have the same length (expected shape [{','.join(map(str, shape))}])")
    if strings:
        return array
    if array.size and array.dtype.kind not in ACCEPTED_KINDS.get(target.kind, ""):
        raise invalid(f"{where}: JSON Value: {snippet(value)} is not of expected type: {dtype_name(dtype)}")
    limits = np.iinfo(target) if target.kind in "iu" else None
    if limits and array.size and (array.min() < limits.min or array.max() > limits.max):
        raise invalid(f"{where}: JSON Value: {snippet(value)} does not fit in type: {dtype_name(dtype)}")
    converted = array.astype(target)
    if target.kind == "f" and np.any(np.isinf(converted) & np.isfinite(array)):
        raise invalid(f"Cannot convert JSON value: {snippet(value)} to {dtype_name(dtype)} without loss of precision.")
    return converted


def instances_to_inputs(instances, infos) -> dict[str, np.ndarray]:
    """Row format: one list element per example, stacked along a new batch dimension."""
    names = sorted(infos)
    if not isinstance(instances, list):
        raise invalid(f"JSON Value: {snippet(instances)} Excepting 'instances' to be an list/array")
    if not instances:
        raise invalid("No values in 'instances' array")
    named = isinstance(instances[0], dict) and not is_b64(instances[0])
    if not named and len(names) > 1:
        raise invalid("instances is a plain list, but expecting list of objects as multiple input tensors "
                      "required as per tensorinfo_map")
    columns: dict[str, list] = {name: [] for name in names} if named else {names[0]: instances}
    for index, element in enumerate(instances):
        is_object = isinstance(element, dict) and not is_b64(element)
        if named and not is_object:
            raise invalid(f"Expecting object but got list at item {index} of input list")
        if not named and is_object:
            raise invalid(f"Expecting value/list but got object at item {index} of input list")
        if named:
            if set(element) != set(names):
                raise invalid(f"Failed to process element: {index} of 'instances' list. JSON object: "
                              f"{snippet(element)} keys must be equal to: {','.join(names)}")
            for name in names:
                columns[name].append(element[name])
    return {name: json_to_array(values, infos[name].dtype, f"'instances' input '{name}'")
            for name, values in columns.items()}


def columnar_to_inputs(inputs, infos) -> dict[str, np.ndarray]:
    """Columnar format: one value per named input, batch dimension included."""
    names = sorted(infos)
    if not isinstance(inputs, dict) or is_b64(inputs):
        if len(names) > 1:
            raise invalid("inputs is a plain value/list, but expecting an object as multiple input tensors "
                          "required as per tensorinfo_map")
        return {names[0]: json_to_array(inputs, infos[names[0]].dtype, f"'inputs' input '{names[0]}'")}
    for name in names:
        if name not in inputs:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
    return {name: json_to_array(inputs[name], infos[name].dtype, f"'inputs' input '{name}'") for name in names}


def array_to_json(name: str, value: np.ndarray):
    if value.dtype == object:
        as_bytes = name.endswith("_bytes")  # TF-Serving's convention for binary outputs

        def encode(item):
            if isinstance(item, list):
                return [encode(i) for i in item]
            if as_bytes:
                return {"b64": base64.b64encode(item).decode()}
            return item.decode(errors="backslashreplace")

        return encode(value.tolist())
    if value.dtype.kind == "f" and value.dtype != np.float64:
        # The shortest text that reads back as the same float32 (0.2, not
        # 0.20000000298023224), as TF-Serving writes it.
        return value.astype(str).astype(np.float64).tolist()
    return value.tolist()


def outputs_to_json(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    names = sorted(outputs)
    if not row_format:
        columns = {name: array_to_json(name, outputs[name]) for name in names}
        return {"outputs": columns[names[0]] if len(names) == 1 else columns}
    batch = None
    for name in names:
        if outputs[name].ndim == 0:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if batch is not None and outputs[name].shape[0] != batch:
            raise invalid(f"Tensor name: {name} has inconsistent batch size: {outputs[name].shape[0]} "
                          f"expecting: {batch}")
        batch = outputs[name].shape[0]
    rows = {name: array_to_json(name, outputs[name]) for name in names}
    if len(names) == 1:
        return {"predictions": rows[names[0]]}
    return {"predictions": [{name: rows[name][i] for name in names} for i in range(batch)]}
