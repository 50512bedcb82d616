"""kernel.models.onnx_proto reads a model as onnx does, without importing onnx: the same
arrays as ``onnx.numpy_helper.to_array`` and the same attribute values as
``onnx.helper.get_attribute_value``, for every element and attribute type."""
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from kernel.models import onnx_proto

PLAIN = {T.FLOAT: np.float32, T.DOUBLE: np.float64, T.INT64: np.int64, T.INT32: np.int32, T.INT8: np.int8,
         T.UINT8: np.uint8, T.INT16: np.int16, T.UINT16: np.uint16, T.FLOAT16: np.float16, T.BOOL: np.bool_,
         T.UINT32: np.uint32, T.UINT64: np.uint64}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes() if a.dtype != object else \
        a.shape == b.shape and a.tolist() == b.tolist()


@pytest.mark.parametrize("raw", [True, False], ids=["raw_data", "typed_field"])
@pytest.mark.parametrize("elem", sorted(PLAIN), ids=lambda e: T.DataType.Name(e))
def test_tensor_values_as_onnx_reads_them(elem, raw):
    rng = np.random.default_rng(elem)
    values = (rng.normal(0, 100, (2, 3)) if PLAIN[elem] in (np.float32, np.float64, np.float16)
              else rng.integers(0, 2 if elem == T.BOOL else 120, (2, 3))).astype(PLAIN[elem])
    tensor = numpy_helper.from_array(values, "x")
    if not raw:                      # the same values in the element type's typed field
        tensor = h.make_tensor("x", elem, [2, 3], values.flatten().tolist() if elem != T.FLOAT16 else values.flatten())
    assert tensor.HasField("raw_data") == raw
    ours, theirs = onnx_proto.to_array(tensor), numpy_helper.to_array(tensor)
    assert _same(ours, theirs) and _same(ours, values)


def test_strings_and_other_types_as_onnx_reads_them():
    strings = h.make_tensor("s", T.STRING, [3], [b"a", "b\u00e9".encode(), b""])
    assert _same(onnx_proto.to_array(strings), numpy_helper.to_array(strings))
    bf16 = h.make_tensor("b", T.BFLOAT16, [2], [1.5, -2.0])          # read by onnx itself
    assert _same(onnx_proto.to_array(bf16), numpy_helper.to_array(bf16))
    with pytest.raises(TypeError):                                     # onnx's error for an undefined type
        onnx_proto.to_array(T(name="u", dims=[1]))


def test_attribute_values_as_onnx_reads_them():
    graph = h.make_graph([], "g", [], [])
    attrs = [h.make_attribute("f", math.nan), h.make_attribute("i", 3), h.make_attribute("s", "text"),
             h.make_attribute("t", numpy_helper.from_array(np.arange(3, dtype=np.float32))),
             h.make_attribute("g", graph), h.make_attribute("fs", [0.5, 1.5]), h.make_attribute("is", [1, 2]),
             h.make_attribute("ss", ["a", "b"]), h.make_attribute("ts", [numpy_helper.from_array(np.ones(2))]),
             h.make_attribute("gs", [graph]), onnx.AttributeProto(name="u")]
    for attr in attrs:
        ours, theirs = onnx_proto.attribute_value(attr), h.get_attribute_value(attr)
        assert type(ours) is type(theirs) and (ours == theirs or (ours != ours and theirs != theirs)), attr.name
    reference = onnx.AttributeProto(name="r", ref_attr_name="outer", type=onnx.AttributeProto.INT)
    with pytest.raises(ValueError, match="reference attribute"):
        onnx_proto.attribute_value(reference)


def test_models_parse_and_opsets_check_as_onnx_does():
    data = h.make_model(h.make_graph([], "g", [], []), opset_imports=[h.make_opsetid("", 17)]).SerializeToString()
    assert onnx_proto.parse_model(data) == onnx.load_model_from_string(data)
    from google.protobuf.message import DecodeError
    with pytest.raises(DecodeError):
        onnx_proto.parse_model(data[:-3])
    newest = onnx.defs.onnx_opset_version()
    assert onnx_proto.EVERY_ONNX_READS <= newest
    assert onnx_proto.newest_opset(onnx_proto.EVERY_ONNX_READS) is None
    assert onnx_proto.newest_opset(onnx_proto.EVERY_ONNX_READS + 1) == newest
