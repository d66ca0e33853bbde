"""hepml.models: the course's models, built from hepml.nn with the course's attribute names so that
state dicts saved by the course's PyTorch code load with ``hepml.load_torch_state_dict``.

Regression of the two W bosons (notebook 3): ``MaskedTransformer``, ``WWRegressor``,
``WWRegressorComplete``, ``WWRegressorWOrdered``. Neutrino flow (notebook 6): ``WWEncoder``,
``NeutrinoFlowModel``. Shared pieces: ``get_obj_type_tensor``, ``embedding``.

Masks: the regression models keep the course's signature and take PyTorch key-padding masks
(True = padding, ignore; hepml's datasets store True = real object, so pass ``~mask``). The neutrino
models take the dataset's mask as stored; see their docstrings.
"""
from .common import embedding, get_obj_type_tensor  # noqa: F401
from .regression import *  # noqa: F401,F403
from .neutrino import *  # noqa
