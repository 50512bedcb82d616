"""ONNX's protobuf messages without importing the ``onnx`` package.

``import onnx`` costs 0.6-1.5 s of CPU, nearly all of it ``ml_dtypes``' extension (imported by
``onnx._mapping`` for its bfloat16 and float8 types), and a cold compile paid it on the
parent's path before anything compiled. The model compiler needs far less: the message classes
(``ModelProto``, ``TensorProto``…: onnx's own generated ``onnx_ml_pb2``, which imports only
``google.protobuf``), a tensor's values as an array for the plain number types, and an
attribute's value. Anything else — a tensor of another element type, stored outside the file
or in segments, a big-endian host, the opset check of an opset newer than every supported
onnx reads — imports ``onnx`` and does exactly what it did before.

The generated module is loaded from onnx's installed folder under a name of our own; it adds
the same serialized ``onnx/onnx-ml.proto`` to protobuf's default pool that ``onnx`` adds when
it is imported later, which protobuf accepts (an identical file is not a duplicate), so both
share one set of descriptors.
"""
from __future__ import annotations

import importlib.util
import sys

import numpy as np

_PRIVATE_NAME = "kernel.models._onnx_ml_pb2"


def _messages():
    """onnx's generated ``onnx_ml_pb2``: the package's own when ``onnx`` is imported already,
    else its file loaded without the package (``onnx`` itself, should the file have moved)."""
    if "onnx" in sys.modules:
        import onnx
        return onnx.onnx_ml_pb2
    if _PRIVATE_NAME in sys.modules:
        return sys.modules[_PRIVATE_NAME]
    spec = importlib.util.find_spec("onnx")
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    for folder in locations:
        file_spec = importlib.util.spec_from_file_location(_PRIVATE_NAME, f"{folder}/onnx_ml_pb2.py")
        try:
            module = importlib.util.module_from_spec(file_spec)
            file_spec.loader.exec_module(module)
        except (OSError, ImportError):
            continue
        sys.modules[_PRIVATE_NAME] = module
        return module
    import onnx
    return onnx.onnx_ml_pb2


_pb = _messages()
ModelProto, TensorProto, AttributeProto = _pb.ModelProto, _pb.TensorProto, _pb.AttributeProto

#: the ai.onnx opset that every onnx this project installs reads (onnx 1.17's, the oldest
#: pyproject.toml allows): a model up to it needs no import of onnx to be checked
EVERY_ONNX_READS = 22


def parse_model(data: bytes):
    """A ``ModelProto`` from a model file's bytes, as ``onnx.load_model_from_string`` parses it
    (protobuf's ``DecodeError`` for bytes that are not one, or that it only partly consumed)."""
    from google.protobuf.message import DecodeError
    proto = ModelProto()
    decoded = proto.ParseFromString(data)
    if decoded is not None and decoded != len(data):
        raise DecodeError(f"Protobuf decoding consumed too few bytes: {decoded} out of {len(data)}")
    return proto


def newest_opset(version: int) -> int | None:
    """The newest ai.onnx opset onnx reads, when ``version`` may exceed it (None when every
    supported onnx reads ``version``: nothing imported)."""
    if version <= EVERY_ONNX_READS:
        return None
    import onnx
    return onnx.defs.onnx_opset_version()


# element type → (NumPy dtype, the TensorProto field holding it when not in raw_data, how that
# field's values become the dtype: "cast" as numbers, "narrow" through uint32 as onnx's
# numpy_helper stores 8- and 16-bit values in int32_data)
_PLAIN = {
    TensorProto.FLOAT: (np.float32, "float_data", "cast"),
    TensorProto.DOUBLE: (np.float64, "double_data", "cast"),
    TensorProto.INT64: (np.int64, "int64_data", "cast"),
    TensorProto.INT32: (np.int32, "int32_data", "cast"),
    TensorProto.INT8: (np.int8, "int32_data", "cast"),
    TensorProto.UINT8: (np.uint8, "int32_data", "cast"),
    TensorProto.INT16: (np.int16, "int32_data", "narrow"),
    TensorProto.UINT16: (np.uint16, "int32_data", "narrow"),
    TensorProto.FLOAT16: (np.float16, "int32_data", "narrow"),
    TensorProto.BOOL: (np.bool_, "int32_data", "narrow"),
    TensorProto.UINT32: (np.uint32, "uint64_data", "cast"),
    TensorProto.UINT64: (np.uint64, "uint64_data", "cast"),
}


def to_array(tensor) -> np.ndarray:
    """A tensor's values, as ``onnx.numpy_helper.to_array`` gives them (the same dtype, shape
    and values; tests/models compares the two). Strings and the plain number types stored in
    the file are read here; anything else by onnx."""
    dims = tuple(tensor.dims)
    external = tensor.data_location == TensorProto.EXTERNAL or tensor.HasField("segment")
    if tensor.data_type == TensorProto.STRING and not external:
        return np.asarray([s.decode("utf-8") for s in tensor.string_data]).astype(object).reshape(dims)
    plain = _PLAIN.get(tensor.data_type)
    if plain is None or external or sys.byteorder != "little":
        from onnx import numpy_helper
        return numpy_helper.to_array(tensor)
    dtype, field, how = plain
    if tensor.HasField("raw_data"):
        return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(dims)
    values = getattr(tensor, field)
    if how == "narrow":
        narrow = np.uint8 if dtype == np.bool_ else np.uint16
        return np.array(values, dtype=np.int32).view(np.uint32).astype(narrow).view(dtype).reshape(dims)
    storage = {"float_data": np.float32, "double_data": np.float64, "int64_data": np.int64,
               "int32_data": np.int32, "uint64_data": np.uint64}[field]
    return np.asarray(values, dtype=storage).astype(dtype).reshape(dims)


_SINGLE = {AttributeProto.FLOAT: "f", AttributeProto.INT: "i", AttributeProto.STRING: "s",
           AttributeProto.TENSOR: "t", AttributeProto.SPARSE_TENSOR: "sparse_tensor", AttributeProto.GRAPH: "g",
           AttributeProto.TYPE_PROTO: "tp"}
_REPEATED = {AttributeProto.FLOATS: "floats", AttributeProto.INTS: "ints", AttributeProto.STRINGS: "strings",
             AttributeProto.TENSORS: "tensors", AttributeProto.SPARSE_TENSORS: "sparse_tensors",
             AttributeProto.GRAPHS: "graphs", AttributeProto.TYPE_PROTOS: "type_protos"}


def attribute_value(attr):
    """An attribute's value, as ``onnx.helper.get_attribute_value`` gives it (a repeated field
    as a list; None for UNDEFINED); a reference attribute or an unknown type is onnx's
    ``ValueError``."""
    if not attr.ref_attr_name:
        if attr.type in _SINGLE:
            return getattr(attr, _SINGLE[attr.type])
        if attr.type in _REPEATED:
            return list(getattr(attr, _REPEATED[attr.type]))
        if attr.type == AttributeProto.UNDEFINED:
            return None
    from onnx import helper
    return helper.get_attribute_value(attr)
