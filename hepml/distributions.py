"""Distributions (re-exported from hepml.flows.distributions)."""
from .flows.distributions import Distribution, Normal, DiagNormal, BoxUniform, NormalizingFlow  # noqa: F401

__all__ = ["Distribution", "Normal", "DiagNormal", "BoxUniform", "NormalizingFlow"]
