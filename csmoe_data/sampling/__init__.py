"""Descriptor-driven sampling of manifest pools (strategy registry, allocation, splits)."""

from csmoe_data.sampling.options import SamplingOptions, parse_split

__all__ = ["SamplingOptions", "parse_split"]
