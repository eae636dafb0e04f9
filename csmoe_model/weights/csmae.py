"""Import jakhac/CSMAE Lightning checkpoints (Hackstein, Sumbul, Clasen, Demir, IEEE TGRS 2024).

A CSMAE checkpoint (``trainer.save_checkpoint``) holds ``state_dict`` with the keys of CSMAE's
``CSMAE`` LightningModule: ``backbone.*`` (``src/csmae_backbone.py``: ``patch_embed`` and
``cls_token`` for S1, ``patch_embed_s2`` and ``cls_token_s2`` for S2, ``blocks_s1``/``blocks_s2``
with ``norm_s1``/``norm_s2`` when there are sensor-specific blocks, the shared ``blocks``,
``norm``, ``fc_norm``, the fixed ``pos_embed``) and ``decoder.*`` (common decoding) or
``decoder_s2_to_s1.*`` / ``decoder_s1_to_s2.*`` (specific decoding: one decoder per *target*
sensor), plus ``hyper_parameters["cfg"]``, an OmegaConf ``DictConfig``. The checkpoint is read
with :func:`~csmoe_model.weights.safe_load.read_torch_checkpoint`, which never imports OmegaConf;
the config's values are read from the pickled state of the ``DictConfig`` as plain data.

The variant follows from the keys: sensor-specific blocks present -> "SE" (sensor-specific
encoder) else "CE" (common encoder); ``decoder.*`` -> "CD" else "SD". Sizes follow from the
tensor shapes; what the shapes do not fix (attention heads, masking and reconstruction strategy,
mask ratio, temperature, which losses are on) comes from the config when it is readable, else
CSMAE's defaults (``csmae.yaml``).

Input conventions of CSMAE (``src/bigearthnet_dataset``): channels S2 B02 B03 B04 B08 B05 B06 B07
B11 B12 B8A then S1 VH VV (``BAND_COMBINATION_PREDEFINTIONS[12]``), each band bicubically resized
to 120 x 120, normalised with the BigEarthNet statistics of ``bigearthnet_common.constants``
(``BAND_STATS_S2``, ``BAND_STATS_S1``; :data:`BIGEARTHNET_NORMALIZATION`), and transposed
spatially: ``BENDataSet.__getitem__`` applies ``np.transpose(img, (2, 1, 0))`` to the C x H x W
array and torchvision's ``ToTensor`` turns the W x H x C result into C x W x H.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from csmoe_common.atomic import new_folder
from csmoe_common.bands import S1_BANDS, S2_BANDS_10
from csmoe_model.errors import CsmoeError
from csmoe_model.weights.safe_load import SkippedObject, read_torch_checkpoint

__all__ = [
    "BIGEARTHNET_NORMALIZATION",
    "CsmaeCheckpoint",
    "convert_state_dict",
    "import_csmae",
    "load_csmae_checkpoint",
]

#: BigEarthNet band statistics as CSMAE normalises with them (kai-tub/bigearthnet_common,
#: ``constants.py`` ``BAND_STATS_S2`` / ``BAND_STATS_S1``, read by CSMAE's
#: ``BEN_lmdb_utils.band_combi_to_mean_std``): S2 in raw L2A digital numbers, S1 in dB, in the
#: model's band order (S2 B02 B03 B04 B08 B05 B06 B07 B11 B12 B8A; S1 VH VV).
_S2_MEAN = {
    "B02": 429.9430203, "B03": 614.21682446, "B04": 590.23569706, "B08": 2218.94553375,
    "B05": 950.68368468, "B06": 1792.46290469, "B07": 2075.46795189, "B11": 1594.42694882,
    "B12": 1009.32729131, "B8A": 2266.46036911,
}  # fmt: skip
_S2_STD = {
    "B02": 572.41639287, "B03": 582.87945694, "B04": 675.88746967, "B08": 1365.45589904,
    "B05": 729.89827633, "B06": 1096.01480586, "B07": 1273.45393088, "B11": 1079.19066363,
    "B12": 818.86747235, "B8A": 1356.13789355,
}  # fmt: skip
_S1_MEAN = {"VH": -19.29044597721542, "VV": -12.619993741972035}
_S1_STD = {"VH": 5.464428464912864, "VV": 5.115911777546365}
BIGEARTHNET_NORMALIZATION: dict[str, list[float]] = {
    "s2_mean": [_S2_MEAN[b] for b in S2_BANDS_10],
    "s2_std": [_S2_STD[b] for b in S2_BANDS_10],
    "s1_mean": [_S1_MEAN[b] for b in S1_BANDS],
    "s1_std": [_S1_STD[b] for b in S1_BANDS],
}

#: attention heads of CSMAE's backbones by width (``vit_tiny`` ... ``vit_large``)
_HEADS_BY_WIDTH = {192: 3, 384: 6, 768: 12, 1024: 16}
_HEADS_BY_NAME = {"vit_tiny": 3, "vit_small": 6, "vit_base": 12, "vit_large": 16}
_BLOCK_PARTS = {
    "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
    "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
    "mlp.fc2.weight", "mlp.fc2.bias",
}  # fmt: skip
_PRESET_BY_VARIANT = {
    (True, "specific"): "csmae-sesd",
    (True, "common"): "csmae-secd",
    (False, "specific"): "csmae-cesd",
    (False, "common"): "csmae-cecd",
}

INPUT_TRANSFORM_NOTE = (
    "CSMAE's BigEarthNet pipeline transposes each image spatially (np.transpose(img, (2, 1, 0)) "
    "on C x H x W, then torchvision ToTensor), so its weights saw images with rows and columns "
    "swapped; input_transform=transpose_hw makes this model swap them itself, so it takes "
    "images in raster orientation (rows = north to south) and computes CSMAE's embeddings."
)


def _omegaconf_plain(obj: Any) -> Any:
    """The values of a pickled OmegaConf tree, from the stand-ins' recorded state.

    A ``DictConfig``/``ListConfig`` stand-in keeps ``{"_content": ...}``; a value node
    (``AnyNode``, ``StringNode``, ...) keeps ``{"_val": ...}``. Nothing from OmegaConf runs.
    """
    if isinstance(obj, SkippedObject):
        state = obj.state if isinstance(obj.state, dict) else {}
        if "_content" in state:
            return _omegaconf_plain(state["_content"])
        if "_val" in state:
            return _omegaconf_plain(state["_val"])
        return None
    if isinstance(obj, dict):
        return {str(k): _omegaconf_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_omegaconf_plain(v) for v in obj]
    return obj if isinstance(obj, str | int | float | bool) or obj is None else None


def _get(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


@dataclass
class CsmaeCheckpoint:
    """A CSMAE checkpoint understood: its variant, our config and the converted weights.

    Attributes:
        preset: the matching preset (``csmae-sesd``, ``csmae-secd``, ``csmae-cesd``, ``csmae-cecd``).
        overrides: config values that differ from the preset (sizes of a smaller backbone,
            strategies read from the checkpoint's config).
        state_dict: the full model state dict in our key names (encoder and decoders).
        csmae_config: the checkpoint's config as plain values (empty when it was unreadable).
        skipped: globals the reader did not resolve.
        assumed: config values taken from CSMAE's defaults because the checkpoint did not say.
    """

    preset: str
    overrides: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    csmae_config: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    assumed: list[str] = field(default_factory=list)

    @property
    def variant(self) -> str:
        """``SESD``, ``SECD``, ``CESD`` or ``CECD``."""
        return self.preset.rsplit("-", 1)[-1].upper()


def _indices(keys: list[str], prefix: str) -> list[int]:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in keys if (m := pat.match(k))})


def _map_block(rest: str, where: str) -> str:
    if rest not in _BLOCK_PARTS:
        raise CsmoeError(f"unsupported CSMAE block parameter {where}{rest}")
    return rest.replace("mlp.", "ffn.", 1)


def convert_state_dict(
    csmae: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Rename a CSMAE state dict to ours.

    Returns:
        ``(state_dict, fixed)``: our keys (``encoder.*``, ``decoders.*``), and CSMAE's fixed
        sin-cos position tables (``encoder.pos_embed``, ``decoder.pos_embed``) which our model
        recomputes instead of storing.

    Raises:
        CsmoeError: for a key that is not part of a CSMAE model.
    """
    out: dict[str, torch.Tensor] = {}
    fixed: dict[str, torch.Tensor] = {}
    top = {
        "backbone.cls_token": "encoder.cls_token.s1",
        "backbone.cls_token_s2": "encoder.cls_token.s2",
        "backbone.patch_embed.proj.weight": "encoder.patch_embed.s1.proj.weight",
        "backbone.patch_embed.proj.bias": "encoder.patch_embed.s1.proj.bias",
        "backbone.patch_embed_s2.proj.weight": "encoder.patch_embed.s2.proj.weight",
        "backbone.patch_embed_s2.proj.bias": "encoder.patch_embed.s2.proj.bias",
        "backbone.norm.weight": "encoder.norm.weight",
        "backbone.norm.bias": "encoder.norm.bias",
        "backbone.fc_norm.weight": "encoder.fc_norm.weight",
        "backbone.fc_norm.bias": "encoder.fc_norm.bias",
    }
    for s in ("s1", "s2"):
        for p in ("weight", "bias"):
            top[f"backbone.norm_{s}.{p}"] = f"encoder.sensor_norm.{s}.{p}"
    decoders = {"decoder.": "common", "decoder_s2_to_s1.": "s1", "decoder_s1_to_s2.": "s2"}
    block = re.compile(r"^(\d+)\.(.+)$")
    for key, value in csmae.items():
        if key in top:
            out[top[key]] = value
            continue
        if key == "backbone.pos_embed":
            fixed["encoder.pos_embed"] = value
            continue
        mapped = None
        for prefix, ours in (
            ("backbone.blocks_s1.", "encoder.sensor_blocks.s1."),
            ("backbone.blocks_s2.", "encoder.sensor_blocks.s2."),
            ("backbone.blocks.", "encoder.shared_blocks."),
        ):
            if key.startswith(prefix) and (m := block.match(key[len(prefix) :])):
                mapped = f"{ours}{m.group(1)}.{_map_block(m.group(2), prefix)}"
                break
        if mapped is None:
            for prefix, name in decoders.items():
                if not key.startswith(prefix):
                    continue
                rest = key[len(prefix) :]
                dec = f"decoders.{name}."
                if rest.startswith("decoder_blocks.") and (
                    m := block.match(rest[len("decoder_blocks.") :])
                ):
                    mapped = f"{dec}blocks.{m.group(1)}.{_map_block(m.group(2), prefix)}"
                elif rest == "decoder_pos_embed":
                    fixed["decoder.pos_embed"] = value
                    mapped = ""
                else:
                    simple = {
                        "mask_token": "mask_token",
                        "decoder_embed.weight": "embed.weight",
                        "decoder_embed.bias": "embed.bias",
                        "decoder_norm.weight": "norm.weight",
                        "decoder_norm.bias": "norm.bias",
                        "decoder_pred_s2_to_s1.weight": "heads.s1.weight",
                        "decoder_pred_s2_to_s1.bias": "heads.s1.bias",
                        "decoder_pred_s1_to_s2.weight": "heads.s2.weight",
                        "decoder_pred_s1_to_s2.bias": "heads.s2.bias",
                        "decoder_pred.weight": f"heads.{name}.weight",
                        "decoder_pred.bias": f"heads.{name}.bias",
                    }
                    if rest in simple:
                        mapped = dec + simple[rest]
                break
        if mapped is None:
            raise CsmoeError(f"not a CSMAE checkpoint: unexpected key {key!r}")
        if mapped:
            out[mapped] = value
    return out, fixed


def _shape(sd: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise CsmoeError(f"not a CSMAE checkpoint: no {key!r}")
    return tuple(sd[key].shape)


def load_csmae_checkpoint(path: str | Path) -> CsmaeCheckpoint:
    """Read a CSMAE checkpoint safely and work out its variant and our config for it.

    Raises:
        CsmoeError: unreadable or unsafe file, no ``state_dict``, keys or shapes that are not a
            CSMAE model's.
    """
    contents = read_torch_checkpoint(path)
    obj = contents.obj
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        raise CsmoeError(f"{path}: not a Lightning checkpoint (no state_dict)")
    sd = {str(k): v for k, v in obj["state_dict"].items() if isinstance(v, torch.Tensor)}
    keys = list(sd)
    if not any(k.startswith("backbone.") for k in keys):
        raise CsmoeError(f"{path}: not a CSMAE checkpoint (no backbone.* keys)")
    try:  # every key must be one of a CSMAE model's
        state, fixed = convert_state_dict(sd)
    except CsmoeError as exc:
        raise CsmoeError(f"{path}: {exc}") from None
    hp = obj.get("hyper_parameters")
    raw_cfg = hp.get("cfg") if isinstance(hp, dict) else None
    cfg = _omegaconf_plain(raw_cfg) if raw_cfg is not None else {}
    cfg = cfg if isinstance(cfg, dict) else {}

    depth_sensor = len(_indices(keys, "backbone.blocks_s1."))
    if depth_sensor != len(_indices(keys, "backbone.blocks_s2.")):
        raise CsmoeError(f"{path}: S1 and S2 have different numbers of sensor-specific blocks")
    depth_shared = len(_indices(keys, "backbone.blocks."))
    if any(k.startswith("decoder.") for k in keys):
        decoding = "common"
        dec_prefix = "decoder."
    elif any(k.startswith("decoder_s1_to_s2.") for k in keys):
        decoding = "specific"
        dec_prefix = "decoder_s1_to_s2."
    else:
        raise CsmoeError(f"{path}: no CSMAE decoder keys (decoder.* or decoder_s1_to_s2.*)")

    d = _shape(sd, "backbone.cls_token")[-1]
    w1 = _shape(sd, "backbone.patch_embed.proj.weight")
    w2 = _shape(sd, "backbone.patch_embed_s2.proj.weight")
    if w1[0] != d or w2[0] != d or w1[2] != w1[3] or w1[2:] != w2[2:]:
        raise CsmoeError(f"{path}: patch embeddings of unexpected shapes {w1}, {w2}")
    patch = int(w1[2])
    n_tokens = _shape(sd, "backbone.pos_embed")[1] - 1
    grid = math.isqrt(n_tokens)
    if grid * grid != n_tokens:
        raise CsmoeError(f"{path}: {n_tokens} position embeddings are not a square grid")
    in_chans = {"s1": int(w1[1]), "s2": int(w2[1])}
    if in_chans != {"s1": 2, "s2": 10}:
        raise CsmoeError(f"{path}: CSMAE takes 2 S1 + 10 S2 bands, this one {in_chans}")
    first = "backbone.blocks." if depth_shared else "backbone.blocks_s1."
    hidden = _shape(sd, f"{first}0.mlp.fc1.weight")[0]
    dec_dim = _shape(sd, f"{dec_prefix}decoder_embed.weight")[0]
    dec_depth = len(_indices(keys, f"{dec_prefix}decoder_blocks."))
    dec_hidden = _shape(sd, f"{dec_prefix}decoder_blocks.0.mlp.fc1.weight")[0] if dec_depth else 0

    assumed: list[str] = []

    def pick(dotted: str, default: Any) -> Any:
        value = _get(cfg, dotted)
        if value is None:
            assumed.append(dotted)
            return default
        return value

    name = _get(cfg, "backbone.name")
    heads = _HEADS_BY_NAME.get(str(name)) if name else None
    if heads is None:
        heads = _HEADS_BY_WIDTH.get(d)
        if heads is None:
            raise CsmoeError(f"{path}: cannot tell the attention heads of a {d}-wide backbone")
        assumed.append("backbone.name")
    mlp_ratio = hidden / d
    if dec_depth and dec_hidden / dec_dim != mlp_ratio:
        raise CsmoeError(f"{path}: encoder and decoder MLP ratios differ")
    values = {
        "img_size": grid * patch,
        "patch_size": patch,
        "in_chans": in_chans,
        "embed_dim": d,
        "num_heads": heads,
        "mlp_ratio": mlp_ratio,
        "depth_sensor": depth_sensor,
        "depth_shared": depth_shared,
        "moe_blocks": "none",
        "decoder": decoding,
        "decoder_dim": dec_dim,
        "decoder_depth": dec_depth,
        "decoder_heads": int(pick("method_kwargs.decoder_num_heads", 16)),
        "mask_mode": str(pick("backbone.kwargs.masking_strategy", "random")),
        "mask_ratio": float(pick("method_kwargs.mask_ratio", 0.5)),
        "reconstruction": str(pick("method_kwargs.reconstruction_strategy", "disjoint")),
        "norm_pix_loss": bool(pick("method_kwargs.norm_pix_loss", False)),
        "temperature": float(pick("method_kwargs.mim_temp", 0.5)),
        "w_uni": 1.0 if pick("method_kwargs.apply_umr_loss", True) else 0.0,
        "w_cross": 1.0 if pick("method_kwargs.apply_cmr_loss", True) else 0.0,
        "w_contrastive": 1.0 if pick("method_kwargs.apply_mim_loss", True) else 0.0,
    }
    if _get(cfg, "backbone.kwargs.global_pool") not in (None, "avg"):
        raise CsmoeError(f"{path}: only CSMAE's global_pool='avg' is supported")
    preset = _PRESET_BY_VARIANT[(depth_sensor > 0, decoding)]
    from csmoe_model.registry import get_config

    base = get_config(preset)
    overrides = {k: v for k, v in values.items() if getattr(base, k) != v}
    _check_fixed_positions(path, fixed, d, dec_dim, grid)
    return CsmaeCheckpoint(
        preset=preset,
        overrides=overrides,
        state_dict=state,
        csmae_config=cfg,
        skipped=contents.skipped,
        assumed=assumed,
    )


def _check_fixed_positions(
    path: str | Path, fixed: Mapping[str, torch.Tensor], d: int, dec_dim: int, grid: int
) -> None:
    """CSMAE stores its (frozen) sin-cos tables; ours are recomputed: they must agree."""
    from csmoe_model.layers import sincos_pos_embed_2d

    for key, dim in (("encoder.pos_embed", d), ("decoder.pos_embed", dec_dim)):
        if key not in fixed:
            continue
        ours = sincos_pos_embed_2d(dim, grid, cls_token=True)
        theirs = fixed[key].float()
        if theirs.shape != ours.shape or (theirs - ours).abs().max() > 1e-5:
            raise CsmoeError(f"{path}: {key} is not the 2-D sin-cos table this model recomputes")


def build_from_checkpoint(ckpt: CsmaeCheckpoint, input_transform: str = "none") -> Any:
    """Our full model (encoder and decoders) with the checkpoint's weights, in eval mode.

    Raises:
        CsmoeError: weights that do not fit.
    """
    from csmoe_model.registry import build_model

    model = build_model(ckpt.preset, **ckpt.overrides, input_transform=input_transform)
    missing, unexpected = model.load_state_dict(ckpt.state_dict, strict=False)
    if missing or unexpected:
        raise CsmoeError(
            f"CSMAE weights do not fit {ckpt.preset}: missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}"
        )
    return model.eval()


def import_csmae(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    input_transform: str = "transpose_hw",
    overwrite: bool = False,
) -> tuple[Path, CsmaeCheckpoint]:
    """Convert a CSMAE checkpoint into ``out_dir/model.safetensors`` (encoder weights + metadata).

    Args:
        checkpoint: the CSMAE ``.ckpt``.
        out_dir: folder to write ``model.safetensors`` into (created).
        input_transform: ``transpose_hw`` (default: take images in raster orientation, as
            CSMAE's pipeline transposed them before its model) or ``none`` (feed tensors laid out
            as CSMAE's model received them).
        overwrite: replace an existing ``model.safetensors``.

    Returns:
        The written file and the understood checkpoint.

    Raises:
        CsmoeError: an existing output without ``overwrite``, or any problem reading the checkpoint.
    """
    from csmoe_model.weights.pretrained import WEIGHTS_FILE, save_pretrained

    out = Path(out_dir) / WEIGHTS_FILE
    if out.exists() and not overwrite:
        raise CsmoeError(f"{out} exists; pass --overwrite to replace it")
    ckpt = load_csmae_checkpoint(checkpoint)
    model = build_from_checkpoint(ckpt, input_transform=input_transform)
    with new_folder(out_dir):  # a folder made here goes again if the weights cannot be written
        written = save_pretrained(
            model,
            out,
            normalization=BIGEARTHNET_NORMALIZATION,
            source=f"CSMAE checkpoint {Path(checkpoint).name} ({ckpt.variant})",
            note=INPUT_TRANSFORM_NOTE if input_transform == "transpose_hw" else None,
        )
    return written, ckpt
