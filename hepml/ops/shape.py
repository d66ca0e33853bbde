"""Shape ops: reshape/view, flatten, (un)squeeze, transpose/permute, expand,
repeat, cat/stack, split/chunk/unbind, narrow/select, flip, roll, movedim.

hepml tensors are always contiguous. reshape/view/flatten/unflatten/squeeze/
unsqueeze share the input's storage (as torch views do; note that hepml does
not share the version counter between them). Every other op here returns a
copy made by the strided-copy kernel (csrc/kernels/shape.c): transpose,
permute, expand, ``.T`` and slices never alias their input, unlike torch.

split/chunk/unbind return one tensor per piece, each with its own gradient
node, so backpropagating through all k pieces of a tensor costs k passes over
its gradient: fine for a few pieces (q, k, v), slow for unbind over thousands.
"""
from .. import _C
from ._register import tensor_methods


def _sizes(args, what):
    """``f(2, 3)`` and ``f((2, 3))`` both mean the sizes (2, 3)."""
    if len(args) == 1 and not isinstance(args[0], int):
        if args[0] is None:
            raise TypeError(f"{what}: expected ints or a sequence of ints, got None")
        return tuple(args[0])
    return args


def reshape(input, shape):
    """The same elements in a new shape (one -1 is inferred). Shares storage."""
    return _C.reshape(input, shape)


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dims start_dim..end_dim into one. Shares storage."""
    return _C.flatten(input, start_dim, end_dim)


def unflatten(input, dim, sizes):
    """Split dim ``dim`` into ``sizes`` (one -1 allowed). Shares storage."""
    shape = list(input.shape)
    d = dim + len(shape) if dim < 0 else dim
    if not 0 <= d < len(shape):
        raise IndexError(f"unflatten(): dim {dim} is out of range for a tensor with {len(shape)} dimensions")
    return _C.reshape(input, shape[:d] + list(sizes) + shape[d + 1:])


def unsqueeze(input, dim):
    """A size-1 dim inserted at ``dim``. Shares storage."""
    return _C.unsqueeze(input, dim)


def squeeze(input, dim=None):
    """Size-1 dims removed (all, or those in ``dim``). Shares storage."""
    return _C.squeeze(input, dim)


def permute(input, dims):
    """The dims reordered: result dim k is input dim dims[k] (a copy)."""
    return _C.permute(input, dims)


def transpose(input, dim0, dim1):
    """dims ``dim0`` and ``dim1`` swapped (a copy)."""
    return _C.transpose(input, dim0, dim1)


swapaxes = swapdims = transpose


def t(input):
    """The transpose of a matrix; 0-d and 1-d tensors are returned as copies."""
    if input.ndim > 2:
        raise ValueError(f"t(): expects a tensor with at most 2 dimensions, got shape {tuple(input.shape)}; "
                         "use transpose(dim0, dim1) or .mT")
    return _C.transpose(input, 0, -1) if input.ndim == 2 else _C.permute(input, tuple(range(input.ndim)))


def movedim(input, source, destination):
    """Move dims ``source`` to positions ``destination`` (ints or sequences),
    keeping the order of the others (a copy)."""
    nd = input.ndim
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise ValueError(f"movedim(): source {source} and destination {destination} must have the same length")
    src = [s + nd if s < 0 else s for s in src]
    dst = [s + nd if s < 0 else s for s in dst]
    for s in src + dst:
        if not 0 <= s < nd:
            raise IndexError(f"movedim(): dim {s} is out of range for a tensor with {nd} dimensions")
    order = [None] * nd
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(d for d in range(nd) if d not in src)
    return _C.permute(input, [o if o is not None else next(rest) for o in order])


def expand(input, *sizes):
    """Size-1 dims broadcast to ``sizes`` (-1 keeps a size; new leading dims
    allowed). A copy (torch returns a view); the gradient sums back."""
    return _C.expand(input, _sizes(sizes, "expand()"))


def broadcast_to(input, size):
    """``expand`` to ``size``."""
    return _C.expand(input, tuple(size))


def repeat(input, *sizes):
    """The input tiled ``sizes[k]`` times along each dim (extra leading sizes
    add dims), as torch's Tensor.repeat / numpy.tile."""
    return _C.repeat(input, _sizes(sizes, "repeat()"))


def cat(tensors, dim=0):
    """Tensors joined along an existing dim ``dim``."""
    return _C.cat(tensors, dim)


concat = concatenate = cat


def stack(tensors, dim=0):
    """Tensors of one shape joined along a new dim ``dim``."""
    return _C.stack(tensors, dim)


def narrow(input, dim, start, length):
    """``length`` entries from ``start`` along ``dim`` (a copy)."""
    return _C.narrow(input, dim, int(start), int(length))


def select(input, dim, index):
    """The slice at ``index`` along ``dim``, with that dim removed (a copy)."""
    return _C.select(input, dim, int(index))


def _dim_size(input, dim, op):
    nd = input.ndim
    if not -nd <= dim < nd:
        raise IndexError(f"{op}(): dim {dim} is out of range for a tensor with {nd} dimensions")
    return input.shape[dim]


def split(tensor, split_size_or_sections, dim=0):
    """Pieces along ``dim``: of ``split_size`` each (the last may be smaller),
    or of the listed sizes (which must add up to the dim's size)."""
    n = _dim_size(tensor, dim, "split")
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size <= 0:
            raise ValueError(f"split(): split_size must be a positive int, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
        sizes = sizes or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise ValueError(f"split(): sizes {sizes} must be non-negative and add up to {n}, the size of dim {dim}")
    out, start = [], 0
    for s in sizes:
        out.append(_C.narrow(tensor, dim, start, s))
        start += s
    return tuple(out)


def chunk(input, chunks, dim=0):
    """``chunks`` pieces along ``dim`` of size ceil(n / chunks) (fewer pieces
    when that covers the dim early, as torch)."""
    if not isinstance(chunks, int) or chunks <= 0:
        raise ValueError(f"chunk(): chunks must be a positive int, got {chunks!r}")
    n = _dim_size(input, dim, "chunk")
    if n == 0:
        return tuple(_C.narrow(input, dim, 0, 0) for _ in range(chunks))
    return split(input, -(-n // chunks), dim)


def unbind(input, dim=0):
    """The slices along ``dim``, each without that dim."""
    n = _dim_size(input, dim, "unbind")
    return tuple(_C.select(input, dim, i) for i in range(n))


def flip(input, dims):
    """Entries in reverse order along ``dims`` (an int or a sequence)."""
    return _C.flip(input, dims)


def roll(input, shifts, dims=None):
    """Entries shifted cyclically by ``shifts`` along ``dims``; without dims the
    flattened tensor is rolled and the shape restored (as torch)."""
    if dims is None:
        if not isinstance(shifts, int):
            if len(shifts) != 1:
                raise ValueError("roll(): without dims, shifts must be a single int")
            shifts = shifts[0]
        flat = _C.reshape(input, (-1,))
        return _C.reshape(_C._roll1(flat, int(shifts), 0), tuple(input.shape))
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    dims = [dims] if isinstance(dims, int) else list(dims)
    if len(shifts) != len(dims):
        raise ValueError(f"roll(): shifts {shifts} and dims {dims} must have the same length")
    out = input
    for s, d in zip(shifts, dims):
        out = _C._roll1(out, int(s), d)
    return out


__all__ = ["reshape", "flatten", "unflatten", "unsqueeze", "squeeze", "permute", "transpose", "swapaxes", "swapdims",
           "t", "movedim", "broadcast_to", "cat", "concat", "concatenate", "stack", "narrow", "select", "split",
           "chunk", "unbind", "flip", "roll"]


# ----------------------------------------------------------- Tensor methods

def _reshape_method(self, *shape):
    return _C.reshape(self, _sizes(shape, "reshape()"))


def _view_method(self, *shape):
    if len(shape) == 1 and not isinstance(shape[0], int) and not hasattr(shape[0], "__len__"):
        raise TypeError(f"view(): hepml tensors cannot be reinterpreted as another dtype ({shape[0]!r}); "
                        "use .to(dtype) for a converted copy")
    return _C.reshape(self, _sizes(shape, "view()"))


def _view_as(self, other):
    return _C.reshape(self, tuple(other.shape))


def _expand_as(self, other):
    return _C.expand(self, tuple(other.shape))


def _permute_method(self, *dims):
    return _C.permute(self, _sizes(dims, "permute()"))


def _flip_method(self, *dims):
    return _C.flip(self, _sizes(dims, "flip()"))


def _contiguous(self, memory_format=None):
    """hepml tensors are always contiguous: returns self."""
    return self


tensor_methods(reshape=_reshape_method, view=_view_method, view_as=_view_as, reshape_as=_view_as, flatten=flatten,
               unflatten=unflatten, unsqueeze=unsqueeze, squeeze=squeeze, permute=_permute_method,
               transpose=transpose, swapaxes=transpose, swapdims=transpose, t=t, movedim=movedim, expand=expand,
               expand_as=_expand_as, broadcast_to=broadcast_to, repeat=repeat, narrow=narrow, select=select,
               split=split, chunk=chunk, unbind=unbind, flip=_flip_method, roll=roll, contiguous=_contiguous)
