"""The mask stage: decide which experts each MoE layer keeps."""

from coe.mask.artifact import FORMAT, ExpertMask, Swap, dumps_mask, load_mask, save_mask
from coe.mask.build import MaskSettings, build_mask, mask_sources
from coe.mask.scorers import SCORERS

__all__ = ["FORMAT", "ExpertMask", "Swap", "MaskSettings", "SCORERS", "build_mask", "mask_sources", "dumps_mask", "load_mask", "save_mask"]
