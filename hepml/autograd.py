"""Grad mode and autograd helpers."""
import functools

from . import _C


class set_grad_enabled:
    """Context manager (and decorator) that sets grad mode on or off."""

    def __init__(self, mode=True):
        self.mode = bool(mode)
        self.prev = None

    def __enter__(self):
        self.prev = _C._set_grad_enabled(self.mode)
        return self

    def __exit__(self, *exc):
        _C._set_grad_enabled(self.prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)(self.mode):
                return fn(*args, **kwargs)
        return wrapper


class no_grad(set_grad_enabled):
    """``with hepml.no_grad():`` records no graph: for evaluation and parameter updates."""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    def __init__(self):
        super().__init__(True)


def is_grad_enabled():
    return _C.is_grad_enabled()


def jacobian(f, x, create_graph=False):
    """The Jacobian of ``f`` at ``x``, as ``torch.autograd.functional.jacobian`` for one
    tensor input and one tensor output: ``J[i..., j...] = d f(x)[i...] / d x[j...]``,
    of shape ``f(x).shape + x.shape``.

    How: ``f`` is evaluated once, on a detached copy of ``x`` that requires grad, and
    the graph is then walked backward once per *output element* ``i``, with a one-hot
    ``gradient`` and ``retain_graph=True``: that backward leaves row ``i`` of J in the
    copy's ``.grad``. Reverse mode, so ``f`` may mix the elements of ``x`` any way it
    likes (a batched copy of ``x`` run through ``f`` at once would only be right for
    functions that treat a leading dim as independent events). The loop is over the
    outputs of one function evaluation, not over events: it is meant for looking at
    a model's structure (the course shows that a MADE's Jacobian is triangular), with
    cost ``f(x).numel()`` backward passes.

    Gradients reach only the copy of ``x``: when ``f`` is a ``hepml.nn.Module`` (or a
    bound method of one), its parameters' ``.grad`` are restored afterwards. Other
    tensors requiring grad that ``f`` closes over do accumulate into their ``.grad``
    (hepml's backward has no ``inputs=`` restriction).

    A result that does not depend on ``x`` gives zeros (torch's ``strict=False``).
    ``create_graph=True`` (differentiating the Jacobian again) is not available:
    hepml's backward kernels compute gradients without recording a graph.
    """
    import numpy as np
    import hepml as hm

    if create_graph:
        raise NotImplementedError("jacobian(create_graph=True): hepml's backward does not record a graph, so the "
                                  "Jacobian cannot be differentiated again")
    if not callable(f):
        raise TypeError(f"jacobian(): argument 'f' must be callable, got {type(f).__name__}")
    if isinstance(x, (tuple, list)):
        raise TypeError("jacobian(): argument 'x' must be one tensor (hepml has no tuple-of-inputs form)")
    if not isinstance(x, hm.Tensor):
        x = hm.tensor(x)
    if str(x.dtype) != "float32":
        raise TypeError(f"jacobian(): argument 'x' must be a float32 tensor, got dtype {x.dtype}")
    xs = x.detach().clone().requires_grad_(True)
    module = f if isinstance(f, hm.nn.Module) else getattr(f, "__self__", None)
    params = list(module.parameters()) if isinstance(module, hm.nn.Module) else []
    saved = [None if p.grad is None else p.grad.detach().clone() for p in params]
    try:
        with enable_grad():
            y = f(xs)
        if not isinstance(y, hm.Tensor):
            raise TypeError(f"jacobian(): f(x) must return a hepml.Tensor, got {type(y).__name__}")
        m, n = int(y.numel()), int(xs.numel())
        jac = np.zeros((m, n), dtype=np.float32)  # the container the rows are copied into
        if y.requires_grad and m > 0 and n > 0:
            onehot = np.zeros(m, dtype=np.float32)
            for i in range(m):
                onehot[i] = 1.0
                xs.grad = None
                y.backward(gradient=hm.tensor(onehot.reshape(tuple(y.shape))), retain_graph=i + 1 < m)
                onehot[i] = 0.0
                if xs.grad is not None:
                    jac[i] = xs.grad.numpy().reshape(-1)
    finally:
        for p, g in zip(params, saved):
            p.grad = g
    return hm.tensor(jac.reshape(tuple(y.shape) + tuple(x.shape)))
