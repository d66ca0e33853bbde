"""Matrix exponential (``matrix_exp``), as ``torch.linalg.matrix_exp``.

Runs csrc/kernels/matexp.c: scaling and squaring with a degree-10 Taylor
polynomial, in double inside, float32 out. The gradient is the Fréchet
derivative of exp (the upper-right block of exp([[A^T, G], [0, A^T]])),
computed by the same method. Flows use it for ``RotationTransform``
(R = exp(A - A^T) is a rotation).
"""
from .. import _C
from ._register import tensor_methods


def matrix_exp(input):
    """exp(A) = sum_k A^k / k! of each square matrix in the last two dims of
    ``input`` ``[..., n, n]``; differentiable. Same as ``torch.linalg.matrix_exp``
    (``torch.matrix_exp``), to float32 rounding: hepml computes in double."""
    return _C.matrix_exp(input)


def _matrix_exp_method(self):
    return _C.matrix_exp(self)


tensor_methods(matrix_exp=_matrix_exp_method)

__all__ = ["matrix_exp"]
