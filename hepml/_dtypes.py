"""The dtypes a hepml tensor can hold (NumPy dtype objects, so they compare
equal to ``numpy.float32`` etc.). Only float32 tensors carry gradients."""
import numpy as _np

float32 = _np.dtype("float32")
int64 = _np.dtype("int64")
bool = _np.dtype("bool")  # noqa: A001  (mirrors torch.bool)
