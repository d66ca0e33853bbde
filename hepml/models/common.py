"""Pieces the course's models share: object-type labels and per-object embeddings."""
from .. import nn
from ..creation import zeros


def get_obj_type_tensor(max_njets=13):
    """The object-type label column of the course's models, shape ``[max_njets + 3, 1]``:
    0 for each jet slot, 1 for the two leptons, -1 for the MET. It is appended to every
    embedded token so that attention can tell the object types apart."""
    if not isinstance(max_njets, int) or max_njets < 1:
        raise ValueError(f"get_obj_type_tensor: argument 'max_njets' must be a positive int, got {max_njets!r}")
    labels = zeros(max_njets + 3, 1)
    labels[max_njets:max_njets + 2] = 1.0
    labels[max_njets + 2] = -1.0
    return labels


def embedding(in_features, out_features):
    """``Linear(in_features, out_features)`` followed by SELU: the course's embedding of one
    object type (state-dict keys ``<name>.0.weight`` and ``<name>.0.bias``)."""
    return nn.Sequential(nn.Linear(in_features, out_features), nn.SELU())
