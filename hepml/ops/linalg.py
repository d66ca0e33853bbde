"""Matrix products: ``matmul`` (also ``a @ b``) and ``linear``.

Both run OpenBLAS sgemm from C (csrc/kernels/linalg.c). ``linear`` is one GEMM
over all leading dimensions with the bias fused, and one node in the graph.
"""
from .. import _C
from ._register import tensor_methods


def matmul(input, other):
    """Matrix product with ``torch.matmul``'s rules.

    - 1-D @ 1-D: dot product (a 0-dimensional tensor);
    - 2-D @ 2-D: matrix product;
    - 1-D @ N-D: the vector is treated as a row ``[1, k]`` and that dim is removed
      from the result; N-D @ 1-D: as a column ``[k, 1]``, likewise removed;
    - N-D (N > 2): batched products over the leading dims, which broadcast
      (``[B, 1, m, k] @ [H, k, n] -> [B, H, m, n]``). A broadcast operand is not
      copied; its gradient is summed over the batches that share it.

    ``[..., m, k] @ [k, n]`` runs as a single GEMM with ``... * m`` rows.
    """
    return _C.matmul(input, other)


def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` for input ``[..., in_features]``, weight
    ``[out_features, in_features]`` and bias ``[out_features]`` or None, as
    ``torch.nn.functional.linear``. Gradients flow to all three."""
    return _C.linear(input, weight, bias)


def _matmul_method(self, other):
    return _C.matmul(self, other)


def _rmatmul(self, other):
    return _C.matmul(other, self)


tensor_methods(matmul=_matmul_method, __matmul__=_matmul_method, __rmatmul__=_rmatmul)

__all__ = ["matmul", "linear"]
