"""Normalizing flows with zuko's API (``zuko.flows`` / ``zuko.transforms`` /
``zuko.distributions``), computed by hepml's C kernels (csrc/kernels/flows.c).

    flow = hepml.flows.MAF(features=6, context=16, transforms=3, hidden_features=(64, 64))
    loss = -flow(c).log_prob(x).mean()
    x = flow(c).sample((n,))          # (n, *c.shape[:-1], 6)
"""
from .distributions import Distribution, Normal, DiagNormal, BoxUniform, NormalizingFlow
from .transforms import (Transform, ComposedTransform, DependentTransform, IdentityTransform, AffineTransform,
                         ExpTransform, SigmoidTransform, MonotonicAffineTransform, MonotonicRQSTransform,
                         CircularRQSTransform, CircularShiftTransform, PermutationTransform, RotationTransform,
                         AutoregressiveTransform)
from .flows import (LazyTransform, LazyDistribution, LazyComposedTransform, LazyInverse, Flow,
                    UnconditionalDistribution, UnconditionalTransform)
from .autoregressive import MaskedLinear, MaskedMLP, MaskedAutoregressiveTransform, MAF, NSF, NCSF
from .coupling import MLP, CouplingTransform, GeneralCouplingTransform, NICE, RealNVP

__all__ = ["Distribution", "Normal", "DiagNormal", "BoxUniform", "NormalizingFlow", "Transform",
           "ComposedTransform", "DependentTransform", "IdentityTransform", "AffineTransform", "ExpTransform",
           "SigmoidTransform", "MonotonicAffineTransform", "MonotonicRQSTransform", "CircularRQSTransform",
           "CircularShiftTransform", "PermutationTransform", "RotationTransform", "AutoregressiveTransform",
           "LazyTransform", "LazyDistribution", "LazyComposedTransform", "LazyInverse", "Flow",
           "UnconditionalDistribution", "UnconditionalTransform", "MaskedLinear", "MaskedMLP",
           "MaskedAutoregressiveTransform", "MAF", "NSF", "NCSF", "MLP", "CouplingTransform",
           "GeneralCouplingTransform", "NICE", "RealNVP"]
