"""Registered presets. See docs/MODEL_CARD.md for which choices come from the papers and which are ours."""

from __future__ import annotations

from csmoe_model.models.csmoe import CsmoeConfig
from csmoe_model.registry import register_model


def _csmae(name: str, depth_sensor: int, decoder: str) -> CsmoeConfig:
    """CSMAE-B/15 as in jakhac/CSMAE's configs (``csmae_<variant>.yaml``, ``vit_base``)."""
    return CsmoeConfig(
        name=name, img_size=120, patch_size=15, in_chans={"s1": 2, "s2": 10}, embed_dim=768,
        num_heads=12, depth_sensor=depth_sensor, depth_shared=12 - depth_sensor, moe_blocks="none",
        decoder=decoder, decoder_dim=512, decoder_depth=8, decoder_heads=16, mask_mode="random",
        mask_ratio=0.5, reconstruction="disjoint", temperature=0.5,
    )  # fmt: skip


@register_model("csmae-sesd")
def csmae_sesd() -> CsmoeConfig:
    """CSMAE SESD: sensor-specific encoder (10 + 2 blocks), sensor-specific decoders.

    The configuration CSMAE's README calls its best performing model (``csmae.yaml``); one of its
    two released checkpoints.
    """
    return _csmae("csmae-sesd", 10, "specific")


@register_model("csmae-secd")
def csmae_secd() -> CsmoeConfig:
    """CSMAE SECD: sensor-specific encoder (10 + 2 blocks), common decoder."""
    return _csmae("csmae-secd", 10, "common")


@register_model("csmae-cesd")
def csmae_cesd() -> CsmoeConfig:
    """CSMAE CESD: common encoder (0 + 12 blocks), sensor-specific decoders."""
    return _csmae("csmae-cesd", 0, "specific")


@register_model("csmae-cecd")
def csmae_cecd() -> CsmoeConfig:
    """CSMAE CECD: common encoder (0 + 12 blocks), common decoder; one of CSMAE's released checkpoints."""
    return _csmae("csmae-cecd", 0, "common")


@register_model("csmae-b")
def csmae_b() -> CsmoeConfig:
    """Alias of ``csmae-secd`` (10 + 2 blocks, common decoder): what ``csmae-b`` has always been.

    Compare with ``csmae-sesd`` for CSMAE's best configuration.
    """
    return _csmae("csmae-b", 10, "common")


@register_model("csmoe-b")
def csmoe_b() -> CsmoeConfig:
    """CSMoE-B (ours): CSMAE-B's encoder skeleton with Soft MoE in every encoder block.

    The skeleton: 10 + 2 blocks, sensor norms, CSMAE's pooling and epsilons, 10 S2 bands.

    8 experts x 2 slots (16 slots for the 65 tokens of a sequence), expert width 1536; a 4-block
    decoder (the decoder is discarded after pretraining; it is half the dense model's training
    FLOPs at depth 8).
    """
    return CsmoeConfig(
        name="csmoe-b", patch_size=15, embed_dim=768, num_heads=12, depth_sensor=10, depth_shared=2,
        moe_blocks="all", num_experts=8, slots_per_expert=2, expert_hidden_dim=1536,
        decoder_dim=512, decoder_depth=4, decoder_heads=16,
    )  # fmt: skip


@register_model("csmoe-s")
def csmoe_s() -> CsmoeConfig:
    """CSMoE-S (ours): ViT-S width (384, 6 heads), 10 + 2 blocks, Soft MoE in every block, 8 experts x 2 slots."""
    return CsmoeConfig(
        name="csmoe-s", patch_size=15, embed_dim=384, num_heads=6, depth_sensor=10, depth_shared=2,
        moe_blocks="all", num_experts=8, slots_per_expert=2, expert_hidden_dim=768,
        decoder_dim=256, decoder_depth=4, decoder_heads=8,
    )  # fmt: skip


def _tiny(name: str, moe: str) -> CsmoeConfig:
    return CsmoeConfig(
        name=name, img_size=32, patch_size=8, embed_dim=64, num_heads=4, depth_sensor=2, depth_shared=1,
        moe_blocks=moe, num_experts=4, slots_per_expert=1, expert_hidden_dim=128,
        decoder_dim=32, decoder_depth=1, decoder_heads=4,
    )  # fmt: skip


@register_model("csmae-tiny")
def csmae_tiny() -> CsmoeConfig:
    """Tiny dense model for tests: 32 px, patch 8 (16 tokens), width 64, 2 + 1 blocks."""
    return _tiny("csmae-tiny", "none")


@register_model("csmoe-tiny")
def csmoe_tiny() -> CsmoeConfig:
    """Tiny Soft MoE model for tests: as csmae-tiny with Soft MoE in every block, 4 experts x 1 slot."""
    return _tiny("csmoe-tiny", "all")
