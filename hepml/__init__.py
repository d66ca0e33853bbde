"""hepml: ML tools for precision physics in HEP, with every numeric operation in C.

The API follows PyTorch (tensors, autograd, nn, optim), zuko (flows) and mdmm
(constrained optimisation), so course material carries over; the arithmetic
runs in hepml's own C kernels on the CPU.
"""
import os as _os
import warnings as _warnings


def _preload_blas():
    # hepml._C links libscipy_openblas.so. It is found through an rpath next to
    # hepml in site-packages; loading it here as well makes editable installs
    # and unusual layouts work without LD_LIBRARY_PATH.
    try:
        import ctypes
        import scipy_openblas32 as _ob
        path = _os.path.join(_ob.get_lib_dir(), "lib" + _ob.get_library() + ".so")
        if _os.path.exists(path):
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except ImportError:
        pass


_preload_blas()

from . import _C  # noqa: E402
from ._tensor import Tensor, tensor, from_numpy  # noqa: E402
from ._dtypes import float32, int64, bool  # noqa: E402,A004
from .autograd import no_grad, enable_grad, set_grad_enabled, is_grad_enabled  # noqa: E402
from .creation import (zeros, ones, full, empty, arange, linspace, rand, randn, randint, randperm,  # noqa: E402
                       zeros_like, ones_like, full_like, rand_like, randn_like, empty_like)
from ._config import show_config, set_num_threads, get_num_threads, manual_seed, get_rng_state, set_rng_state  # noqa: E402
from .ops import *  # noqa: E402,F401,F403  (every op module registers its functions and Tensor methods)

from .serialization import save, load  # noqa: E402
from . import nn, optim  # noqa: E402
from .nn.module import count_parameters  # noqa: E402
from . import data, flows, losses, mdmm, metrics, models, physics, report, training  # noqa: E402

__version__ = "0.1.0"
from .torch_compat import load_torch_state_dict  # noqa: E402
