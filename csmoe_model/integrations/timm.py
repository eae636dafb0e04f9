"""timm entry points: every preset's S1 and S2 encoder as a timm model (optional: ``pip install timm``).

Importing this module with timm installed registers ``<preset>_s1`` and ``<preset>_s2`` for each
preset (``-`` becomes ``_``: ``csmoe_b_s2``, ``csmae_sesd_s1``, ``csmoe_tiny_s2``, ...) in timm's
model registry, so the usual timm calls work::

    import timm
    import csmoe_model.integrations.timm  # registers the csmoe models

    model = timm.create_model(
        "csmoe_b_s2",
        pretrained=True,
        pretrained_cfg_overlay={"file": "run/model.safetensors"},
        features_only=True,
        out_indices=(3, 5, 7, 11),
    )
    maps = model(s2)  # [(B, 768, H / 15, W / 15)] * 4

The model wraps the encoder of one sensor (:class:`CsmoeTimmEncoder`); ``pretrained_cfg_overlay``
``file`` points at a csmoe ``model.safetensors`` (training export or ``csmoe import-weights``),
whose other sensor's weights are dropped on load. Without timm, :class:`CsmoeTimmEncoder` is still
usable directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from csmoe_model.errors import CsmoeError
from csmoe_model.models.csmoe import SENSORS, CsmoeEncoder
from csmoe_model.registry import get_config, list_models

__all__: list[str] = ["CsmoeTimmEncoder", "checkpoint_filter_fn", "register_timm_models"]


def timm_name(preset: str, sensor: str) -> str:
    """The timm model name of one sensor of a preset: ``csmoe-b`` + ``s2`` -> ``csmoe_b_s2``."""
    return f"{preset.replace('-', '_')}_{sensor}"


class CsmoeTimmEncoder(nn.Module):
    """One sensor's encoder of a preset, with timm's model interface.

    ``forward(x)`` -> pooled embedding (or logits with ``num_classes > 0``),
    ``forward_features(x)`` -> normalised tokens (B, 1 + L, D), ``forward_head``,
    ``forward_intermediates`` (what timm's ``features_only`` uses), ``feature_info``.

    Args:
        preset: a csmoe preset name.
        sensor: ``"s1"`` or ``"s2"``.
        num_classes: width of a linear head on the pooled embedding (0: none).
        in_chans: must equal the preset's channels for ``sensor`` (timm passes it).
        global_pool: ``"avg"`` (CSMAE's pooling) or ``"token"`` (the CLS token, normed).
        config_overrides: config overrides for the preset (e.g. a weights file's config).
        **overrides: further config overrides.

    Raises:
        CsmoeError: unknown preset or sensor, other channel counts, unknown pooling.
    """

    def __init__(
        self,
        preset: str,
        sensor: str,
        num_classes: int = 0,
        in_chans: int | None = None,
        global_pool: str = "avg",
        config_overrides: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        if sensor not in SENSORS:
            raise CsmoeError(f"sensor must be one of {SENSORS}, got {sensor!r}")
        if global_pool not in ("avg", "token"):
            raise CsmoeError(f"global_pool must be 'avg' or 'token', got {global_pool!r}")
        overrides = {**(config_overrides or {}), **overrides}
        overrides.pop("name", None)
        cfg = get_config(preset, **overrides)
        if in_chans is not None and in_chans != cfg.in_chans[sensor]:
            raise CsmoeError(
                f"{preset} takes {cfg.in_chans[sensor]} {sensor} bands "
                f"({', '.join(cfg.band_names(sensor))}), not {in_chans}; select bands with "
                "CSMoE.select_bands and save_pretrained instead"
            )
        self.config = cfg
        self.sensor = sensor
        self.global_pool = global_pool
        encoder = CsmoeEncoder(cfg)
        other = "s2" if sensor == "s1" else "s1"
        for container in (
            encoder.patch_embed,
            encoder.cls_token,
            encoder.sensor_blocks,
            encoder.sensor_norm,
        ):
            if other in container:
                del container[other]
        self.encoder = encoder
        self.num_features = self.embed_dim = cfg.embed_dim
        self.num_classes = num_classes
        self.head: nn.Module = (
            nn.Linear(cfg.embed_dim, num_classes) if num_classes else nn.Identity()
        )
        names = [f"encoder.sensor_blocks.{sensor}.{i}" for i in range(cfg.depth_sensor)]
        names += [f"encoder.shared_blocks.{i}" for i in range(cfg.depth_shared)]
        self.feature_info = [
            {"num_chs": cfg.embed_dim, "reduction": cfg.patch_size, "module": n} for n in names
        ]

    def _indices(self, indices: int | Sequence[int] | None) -> list[int]:
        depth = self.encoder.depth
        if indices is None:
            return list(range(depth))
        if isinstance(indices, int):
            if not 0 < indices <= depth:
                raise CsmoeError(f"last-n indices {indices} out of range (1 to {depth})")
            return list(range(depth - indices, depth))
        return [int(i) for i in indices]

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Feature maps (B, D, H / p, W / p) of the chosen blocks (timm's interface).

        Raises:
            CsmoeError: an index out of range or an output format other than NCHW/NHWC.
        """
        if str(output_fmt) not in ("NCHW", "NHWC", "Format.NCHW", "Format.NHWC"):
            raise CsmoeError(f"output_fmt must be NCHW or NHWC, got {output_fmt!r}")
        maps = self.encoder.forward_features(
            **{self.sensor: x}, out_indices=self._indices(indices), norm=norm
        )[self.sensor]
        if "NHWC" in str(output_fmt):
            maps = [m.permute(0, 2, 3, 1) for m in maps]
        if intermediates_only:
            return maps
        return self.forward_features(x), maps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised tokens (B, 1 + L, D), CLS first."""
        tokens = self.encoder.forward_sensors({self.sensor: x}, any_size=True)[self.sensor]
        return self.encoder.norm(tokens)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool normalised tokens as CSMAE does (``fc_norm`` of the patch-token mean) and apply the head."""
        pooled = (
            self.encoder.fc_norm(x[:, 1:].mean(dim=1)) if self.global_pool == "avg" else x[:, 0]
        )
        return pooled if pre_logits else self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled embedding (B, D), or logits with a head."""
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the head (timm's interface)."""
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = global_pool
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes else nn.Identity()


def checkpoint_filter_fn(
    state_dict: Mapping[str, torch.Tensor], model: CsmoeTimmEncoder
) -> dict[str, torch.Tensor]:
    """Map a csmoe ``model.safetensors`` (encoder keys, both sensors) onto one sensor's model.

    Keys of the other sensor are dropped; keys already in the wrapper's layout pass through.
    """
    other = "s2" if model.sensor == "s1" else "s1"
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith(("encoder.", "head.")):
            out[key] = value
            continue
        parts = key.split(".")
        if (
            len(parts) > 1
            and parts[1] == other
            and parts[0]
            in (
                "patch_embed",
                "cls_token",
                "sensor_blocks",
                "sensor_norm",
            )
        ):
            continue
        out["encoder." + key] = value
    if model.num_classes:
        own = model.state_dict()
        for k in ("head.weight", "head.bias"):
            out.setdefault(k, own[k])
    return out


def _default_cfg(preset: str, sensor: str) -> dict[str, Any]:
    cfg = get_config(preset)
    size = cfg.resolved_img_size
    return {
        "num_classes": 0,
        "input_size": (cfg.in_chans[sensor], size, size),
        "fixed_input_size": False,
        "first_conv": f"encoder.patch_embed.{sensor}.proj",
        "classifier": "head",
        "mean": (0.0,) * cfg.in_chans[sensor],  # inputs are normalised by the caller
        "std": (1.0,) * cfg.in_chans[sensor],
        "license": "apache-2.0",
    }


def _entrypoint(preset: str, sensor: str) -> Any:
    def create(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        from timm.models import build_model_with_cfg

        overlay = kwargs.get("pretrained_cfg_overlay") or {}
        if pretrained and overlay.get("file") and "config_overrides" not in kwargs:
            # a csmoe weights file describes its architecture (e.g. imported smaller CSMAE weights)
            from csmoe_model.weights.pretrained import read_pretrained

            info, _ = read_pretrained(overlay["file"])
            if info.model is not None and info.config:
                kwargs["config_overrides"] = dict(info.config)

        return build_model_with_cfg(
            CsmoeTimmEncoder,
            timm_name(preset, sensor),
            pretrained,
            pretrained_filter_fn=checkpoint_filter_fn,
            feature_cfg={"feature_cls": "getter"},
            preset=preset,
            sensor=sensor,
            **kwargs,
        )

    create.__name__ = create.__qualname__ = timm_name(preset, sensor)
    create.__module__ = __name__
    create.__doc__ = f"{preset}'s {sensor.upper()} encoder (csmoe)."
    return create


def register_timm_models() -> list[str]:
    """Register every preset's S1 and S2 encoder with timm; returns the registered names.

    Raises:
        CsmoeError: when timm is not installed.
    """
    try:
        from timm.models import generate_default_cfgs, register_model
    except ImportError:
        raise CsmoeError("timm is not installed: pip install 'csmoe[timm]'") from None
    except (RuntimeError, OSError) as exc:  # e.g. a torchvision build that does not fit torch
        raise CsmoeError(f"timm is installed but cannot be imported: {exc}") from None
    names: list[str] = []
    cfgs = {}
    for preset in list_models():
        for sensor in SENSORS:
            cfgs[timm_name(preset, sensor)] = _default_cfg(preset, sensor)
    globals()["default_cfgs"] = generate_default_cfgs(cfgs)
    for preset in list_models():
        for sensor in SENSORS:
            fn = _entrypoint(preset, sensor)
            globals()[fn.__name__] = fn
            register_model(fn)
            names.append(fn.__name__)
    return names


#: the names registered with timm on import ([] when timm is missing or cannot be imported;
#: :data:`UNAVAILABLE` then says why)
REGISTERED: list[str] = []
UNAVAILABLE: str | None = None
try:  # register on import when timm is there; without timm the wrapper stays usable
    REGISTERED = register_timm_models()
except CsmoeError as _exc:
    UNAVAILABLE = str(_exc)
