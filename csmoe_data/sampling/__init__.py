"""Descriptor-driven sampling of manifest pools (strategy registry, allocation, splits)."""

from csmoe_data.sampling.options import SamplingOptions

__all__ = ["SamplingOptions"]
