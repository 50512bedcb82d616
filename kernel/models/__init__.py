"""The model compiler: ONNX risk and valuation models → Numba block kernels (onnxruntime as
reference and fallback), and their training pipelines (``postloan train``).

>>> import kernel
>>> pd = kernel.compile_model("models/pd_model.onnx")      # doctest: +SKIP
>>> pd.backend, [o.qualified for o in pd.outputs]          # doctest: +SKIP
('numba', ['pd_model.probability', 'pd_model.label'])

See docs/models.md.
"""
from .compiled import Block, CompiledModel, ModelInput, ModelOutput, compile_model
from .errors import ModelError

__all__ = ["Block", "CompiledModel", "ModelError", "ModelInput", "ModelOutput", "compile_model"]
