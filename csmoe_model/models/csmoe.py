"""CSMoE: the CSMAE cross-sensor masked autoencoder with optional Soft MoE blocks.

Encoder (CSMAE, Hackstein et al. 2024): per sensor a patch embedding and a CLS token, fixed 2-D
sin-cos positions shared by both sensors, ``depth_sensor`` sensor-specific blocks, then
``depth_shared`` shared blocks that process each sensor's sequence separately (same weights, no
cross-attention). Any encoder block may use a Soft MoE feed-forward (``moe_blocks``); in a shared
block the experts are shared by both sensors while routing stays per sequence.

Objective: masked reconstruction within (S1<-S1, S2<-S2) and across sensors (S1<-S2, S2<-S1),
MSE on hidden patches, plus NT-Xent between the pooled S1 and S2 embeddings of a pair. Masking and
reconstruction follow CSMAE's code (jakhac/CSMAE ``src/csmae_backbone.py``, ``src/csmae.py``):
with the same weights and mask noise, every embedding and loss term equals CSMAE's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from csmoe_common.bands import S1_BANDS, S2_BANDS_12, s2_bands
from csmoe_model.errors import CsmoeError
from csmoe_model.layers import Block, PatchEmbed, SoftMoE, resample_pos_embed, sincos_pos_embed_2d

SENSORS: tuple[str, str] = ("s1", "s2")
NATIVE_SIZE = 120  # BigEarthNet patches: 120 x 120 px at 10 m
MASK_MODES = ("random", "identical", "disjoint")
RECONSTRUCTIONS = ("disjoint", "identical")
INPUT_TRANSFORMS = ("none", "transpose_hw")
DECODERS = ("common", "specific")
#: LayerNorm epsilons as in CSMAE: timm ViT blocks and norms with eps 1e-6 (``vit_*`` builders),
#: the decoder's blocks and final norm with PyTorch's default 1e-5 (``nn.LayerNorm``)
ENCODER_NORM_EPS = 1e-6
DECODER_NORM_EPS = 1e-5
MOE_SPECS = ("none", "all", "every-2", "last-half", "sensor", "shared")


def auto_img_size(patch_size: int, native: int = NATIVE_SIZE) -> int:
    """The multiple of ``patch_size`` nearest ``native`` (ties go up: 16 -> 128, 14 -> 126)."""
    lo = (native // patch_size) * patch_size
    hi = lo if lo == native else lo + patch_size
    return lo if lo > 0 and native - lo < hi - native else hi


@dataclass
class CsmoeConfig:
    """Everything that defines a model; ``dataclasses.asdict`` gives JSON-ready values.

    Attributes:
        name: preset the config came from.
        img_size: input side in pixels; ``None`` = the multiple of ``patch_size`` nearest 120.
        patch_size: patch side in pixels.
        in_chans: bands per sensor, ``{"s1": 2, "s2": 10}`` (CSMAE's), or 12 S2 bands.
        bands: band names per sensor in channel order (``None``: the default order for the
            channel count, :mod:`csmoe_common.bands`); set by :meth:`CSMoE.select_bands`.
        embed_dim, num_heads, mlp_ratio, qkv_bias: encoder transformer sizes.
        depth_sensor: sensor-specific blocks per sensor.
        depth_shared: shared (cross-sensor) blocks.
        moe_blocks: which encoder blocks use Soft MoE, by index over the encoder's
            ``depth_sensor + depth_shared`` blocks (sensor-specific first): ``"none"``, ``"all"``,
            ``"every-2"`` (odd indices), ``"last-half"``, ``"sensor"``, ``"shared"``, or a list of
            indices.
        num_experts, slots_per_expert: Soft MoE experts and slots per expert.
        expert_hidden_dim: hidden width of each expert (``None`` = the dense MLP's).
        decoder: ``"common"`` (one transformer, a pixel head per sensor) or ``"specific"``.
        decoder_dim, decoder_depth, decoder_heads: decoder sizes.
        mask_mode: CSMAE's masking strategy: ``"random"`` (independent per sensor),
            ``"identical"`` (S2 shares S1's mask) or ``"disjoint"`` (S2 sees exactly the patches
            hidden from S1: its mask ratio is ``1 - mask_ratio``).
        mask_ratio: fraction of S1's patches hidden from the encoder (and of S2's, except with
            ``disjoint`` masking).
        reconstruction: CSMAE's reconstruction strategy for the cross-sensor terms:
            ``"disjoint"`` (the target decoded at the source's visible positions, scored on the
            source's hidden patches) or ``"identical"`` (the source's tokens placed at the
            target's visible positions, scored on the target's hidden patches; with identical
            masking, at the mirrored positions, scored on the visible patches).
        norm_pix_loss: reconstruct per-patch normalised pixels.
        w_uni, w_cross, w_contrastive: loss weights (0 switches a term off).
        temperature: NT-Xent temperature.
        input_transform: ``"none"`` or ``"transpose_hw"``: swap each image's rows and columns
            before the patch embedding (and swap feature maps back). CSMAE's data pipeline
            feeds its model transposed images (``np.transpose(img, (2, 1, 0))`` on C x H x W,
            then ``ToTensor``), so weights imported from CSMAE set it: the model then takes
            images in their raster orientation and computes what CSMAE computed.
    """

    name: str = "custom"
    img_size: int | None = None
    patch_size: int = 15
    in_chans: dict[str, int] = field(default_factory=lambda: {"s1": 2, "s2": 10})
    bands: dict[str, list[str]] | None = None
    embed_dim: int = 768
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    depth_sensor: int = 10
    depth_shared: int = 2
    moe_blocks: str | list[int] = "none"
    num_experts: int = 8
    slots_per_expert: int = 1
    expert_hidden_dim: int | None = None
    decoder: str = "common"
    decoder_dim: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 16
    mask_mode: str = "random"
    mask_ratio: float = 0.5
    reconstruction: str = "disjoint"
    norm_pix_loss: bool = False
    w_uni: float = 1.0
    w_cross: float = 1.0
    w_contrastive: float = 1.0
    temperature: float = 0.5
    input_transform: str = "none"

    def __post_init__(self) -> None:
        if isinstance(self.moe_blocks, tuple):
            self.moe_blocks = list(self.moe_blocks)
        self.in_chans = dict(self.in_chans)
        if self.bands is not None:
            self.bands = {k: list(v) for k, v in dict(self.bands).items()}
        self.validate()

    def validate(self) -> None:
        """Check values and combinations.

        Raises:
            CsmoeError: naming the offending option.
        """

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise CsmoeError(f"invalid model config ({self.name}): {msg}")

        ints: tuple[str, ...] = (
            "patch_size",
            "embed_dim",
            "num_heads",
            "depth_sensor",
            "depth_shared",
        )
        ints += ("num_experts", "slots_per_expert", "decoder_dim", "decoder_depth", "decoder_heads")
        for key in ints:
            v = getattr(self, key)
            need(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                f"{key} must be an int >= 0, got {v!r}",
            )
        for key in ("patch_size", "embed_dim", "num_heads", "num_experts", "slots_per_expert"):
            need(getattr(self, key) >= 1, f"{key} must be >= 1")
        need(self.depth_sensor + self.depth_shared >= 1, "the encoder needs at least one block")
        need(
            self.img_size is None or (isinstance(self.img_size, int) and self.img_size > 0),
            "img_size must be a positive int or None",
        )
        need(
            self.resolved_img_size % self.patch_size == 0,
            f"img_size {self.resolved_img_size} is not a multiple of patch_size {self.patch_size} (use img_size={auto_img_size(self.patch_size)} or None)",
        )
        need(
            isinstance(self.in_chans, dict) and set(self.in_chans) == set(SENSORS),
            f"in_chans must have keys {SENSORS}, got {self.in_chans!r}",
        )
        need(
            all(isinstance(c, int) and c >= 1 for c in self.in_chans.values()),
            "in_chans values must be positive ints",
        )
        need(
            self.embed_dim % self.num_heads == 0 and self.embed_dim % 4 == 0,
            "embed_dim must be a multiple of num_heads and of 4",
        )
        need(
            self.decoder_depth == 0
            or (self.decoder_dim % self.decoder_heads == 0 and self.decoder_dim % 4 == 0),
            "decoder_dim must be a multiple of decoder_heads and of 4",
        )
        need(self.decoder in DECODERS, f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        need(
            self.mask_mode in MASK_MODES,
            f"mask_mode must be one of {MASK_MODES}, got {self.mask_mode!r}",
        )
        need(
            isinstance(self.mask_ratio, int | float) and 0.0 <= self.mask_ratio < 1.0,
            "mask_ratio must be in [0, 1)",
        )
        need(
            self.input_transform in INPUT_TRANSFORMS,
            f"input_transform must be one of {INPUT_TRANSFORMS}, got {self.input_transform!r}",
        )
        need(
            self.reconstruction in RECONSTRUCTIONS,
            f"reconstruction must be one of {RECONSTRUCTIONS}, got {self.reconstruction!r}",
        )
        if self.bands is not None:
            need(
                isinstance(self.bands, dict) and set(self.bands) == set(SENSORS),
                f"bands must have keys {SENSORS}",
            )
            for sensor, names in self.bands.items():
                known = S1_BANDS if sensor == "s1" else S2_BANDS_12
                need(
                    len(names) == self.in_chans.get(sensor)
                    and len(set(names)) == len(names)
                    and all(b in known for b in names),
                    f"bands[{sensor!r}] must list {self.in_chans.get(sensor)} distinct names of "
                    f"{', '.join(known)}, got {names!r}",
                )
        else:
            need(
                self.in_chans.get("s1") == len(S1_BANDS) and self.in_chans.get("s2") in (10, 12),
                "without explicit bands, in_chans must be {'s1': 2, 's2': 10 or 12}",
            )
        need(
            self.expert_hidden_dim is None
            or (isinstance(self.expert_hidden_dim, int) and self.expert_hidden_dim >= 1),
            "expert_hidden_dim must be a positive int or None",
        )
        need(self.mlp_ratio > 0 and self.temperature > 0, "mlp_ratio and temperature must be > 0")
        need(min(self.w_uni, self.w_cross, self.w_contrastive) >= 0, "loss weights must be >= 0")
        need(
            max(self.w_uni, self.w_cross, self.w_contrastive) > 0,
            "at least one loss weight must be > 0",
        )
        need(
            self.decoder_depth >= 1 or self.w_uni == self.w_cross == 0,
            "reconstruction losses need decoder_depth >= 1",
        )
        self.moe_indices()  # raises on a bad spec

    @property
    def resolved_img_size(self) -> int:
        """``img_size``, or the multiple of ``patch_size`` nearest 120 when it is ``None``."""
        return self.img_size if self.img_size is not None else auto_img_size(self.patch_size)

    def band_names(self, sensor: str) -> tuple[str, ...]:
        """The names of ``sensor``'s input channels, in order."""
        if self.bands is not None:
            return tuple(self.bands[sensor])
        return S1_BANDS if sensor == "s1" else s2_bands(self.in_chans["s2"])

    @property
    def depth(self) -> int:
        """Encoder blocks a sequence passes through (sensor-specific + shared)."""
        return self.depth_sensor + self.depth_shared

    def moe_indices(self) -> tuple[int, ...]:
        """Indices (over the encoder's ``depth`` blocks) of the Soft MoE blocks.

        Raises:
            CsmoeError: for an unknown spec or an index out of range.
        """
        spec, depth = self.moe_blocks, self.depth
        if isinstance(spec, str):
            table = {
                "none": [],
                "all": range(depth),
                "every-2": range(1, depth, 2),
                "last-half": range(depth // 2, depth),
                "sensor": range(self.depth_sensor),
                "shared": range(self.depth_sensor, depth),
            }
            if spec not in table:
                raise CsmoeError(
                    f"moe_blocks must be one of {MOE_SPECS} or a list of block indices, got {spec!r}"
                )
            return tuple(table[spec])
        try:
            idx = sorted({int(i) for i in spec})
        except (TypeError, ValueError):
            raise CsmoeError(
                f"moe_blocks must be a spec name or a list of ints, got {spec!r}"
            ) from None
        if idx and (idx[0] < 0 or idx[-1] >= depth):
            raise CsmoeError(f"moe_blocks indices must lie in [0, {depth}), got {idx}")
        return tuple(idx)


@dataclass
class CsmoeOutput:
    """What ``CSMoE.forward`` returns.

    Attributes:
        loss: weighted sum of the active terms (scalar).
        losses: each active term (unweighted): ``uni_s1``, ``uni_s2``, ``cross_s1`` (S1 from S2),
            ``cross_s2`` (S2 from S1), ``contrastive``.
        embeddings: pooled (B, D) embeddings of the masked inputs per sensor.
        masks: (B, L) bool per sensor, True where a patch was hidden from the encoder.
    """

    loss: torch.Tensor
    losses: dict[str, torch.Tensor]
    embeddings: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]


def _init_weights(module: nn.Module) -> None:
    # MAE/timm: Xavier-uniform linears with zero bias, unit LayerNorms
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def patchify(img: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, p*p*C) in row-major patch order, pixels (row, col, channel) (MAE)."""
    b, c, h, w = img.shape
    p = patch_size
    x = img.reshape(b, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (h // p) * (w // p), p * p * c)


class CsmoeEncoder(nn.Module):
    """CSMAE's encoder: patch embeddings, CLS tokens, sensor-specific and shared blocks, norms.

    Per sensor a patch embedding, a CLS token, sensor-specific blocks and a LayerNorm
    (``norm_s1``/``norm_s2`` in CSMAE, present when there are sensor-specific blocks),
    then the shared blocks and the final norm; the pooled embedding is
    ``fc_norm(mean(norm(x)[:, 1:]))`` (timm's ``global_pool="avg"`` on CSMAE's normed features).
    """

    pos_embed: torch.Tensor  # a buffer

    def __init__(self, cfg: CsmoeConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.embed_dim = d
        self.patch_size = cfg.patch_size
        self.transpose_hw = cfg.input_transform == "transpose_hw"
        self.depth_sensor = cfg.depth_sensor
        img = cfg.resolved_img_size
        self.patch_embed = nn.ModuleDict(
            {s: PatchEmbed(img, cfg.patch_size, cfg.in_chans[s], d) for s in SENSORS}
        )
        embed_s1 = cast(PatchEmbed, self.patch_embed["s1"])
        self.num_patches: int = embed_s1.num_patches
        self.grid_size: int = embed_s1.grid_size
        self.cls_token = nn.ParameterDict({s: nn.Parameter(torch.zeros(1, 1, d)) for s in SENSORS})
        # fixed, recomputed at build time: not part of the state dict
        self.register_buffer("pos_embed", sincos_pos_embed_2d(d, self.grid_size), persistent=False)
        self._pos_cache: dict[tuple[int, int, torch.dtype, torch.device], torch.Tensor] = {}
        moe = set(cfg.moe_indices())

        def block(i: int) -> Block:
            experts = cfg.num_experts if i in moe else 0
            return Block(
                d,
                cfg.num_heads,
                cfg.mlp_ratio,
                cfg.qkv_bias,
                experts,
                cfg.slots_per_expert,
                cfg.expert_hidden_dim,
                norm_eps=ENCODER_NORM_EPS,
            )

        self.sensor_blocks = nn.ModuleDict(
            {s: nn.ModuleList(block(i) for i in range(cfg.depth_sensor)) for s in SENSORS}
        )
        # CSMAE normalises each sensor's sequence after its sensor-specific blocks
        self.sensor_norm = nn.ModuleDict(
            {s: nn.LayerNorm(d, eps=ENCODER_NORM_EPS) for s in SENSORS}
            if cfg.depth_sensor > 0
            else {}
        )
        self.shared_blocks = nn.ModuleList(
            block(cfg.depth_sensor + i) for i in range(cfg.depth_shared)
        )
        self.norm = nn.LayerNorm(d, eps=ENCODER_NORM_EPS)  # tokens for the decoder and the pool
        self.fc_norm = nn.LayerNorm(d, eps=ENCODER_NORM_EPS)  # pooled embedding

    @property
    def depth(self) -> int:
        """Blocks a sequence passes through (sensor-specific + shared)."""
        return self.depth_sensor + len(self.shared_blocks)

    def _pos(self, img: torch.Tensor) -> torch.Tensor:
        """Patch position embeddings for ``img``'s grid: the native table, or it resampled."""
        grid = (img.shape[-2] // self.patch_size, img.shape[-1] // self.patch_size)
        if grid == (self.grid_size, self.grid_size):
            return self.pos_embed.to(img.dtype)
        key = (*grid, img.dtype, img.device)
        if key not in self._pos_cache:
            self._pos_cache[key] = resample_pos_embed(
                self.pos_embed, (self.grid_size, self.grid_size), grid
            ).to(device=img.device, dtype=img.dtype)
        return self._pos_cache[key]

    def embed(
        self,
        sensor: str,
        img: torch.Tensor,
        keep: torch.Tensor | None = None,
        any_size: bool = False,
    ) -> torch.Tensor:
        """Patch embedding, positions, masking and the CLS token: (B, 1 + K, D).

        Args:
            sensor: ``"s1"`` or ``"s2"``.
            img: (B, C, H, W) normalised image.
            keep: (B, K) indices of the visible patches in the order they are kept (CSMAE keeps
                them in the order of its noise's argsort), or ``None`` for all.
            any_size: accept any H, W that are multiples of the patch size (positions resampled).
        """
        if self.transpose_hw:
            img = img.transpose(-2, -1)
        x = self.patch_embed[sensor](img, any_size=any_size) + self._pos(img)
        if keep is not None:
            x = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        # CSMAE adds pos_embed[:, :1] to the CLS token: the sin-cos table's CLS row is zero
        return torch.cat([self.cls_token[sensor].expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)

    def forward_sensor_part(
        self,
        sensor: str,
        img: torch.Tensor,
        keep: torch.Tensor | None = None,
        any_size: bool = False,
    ) -> torch.Tensor:
        """Embedding, the sensor-specific blocks and the sensor's norm: (B, 1 + K, D), CLS first."""
        x = self.embed(sensor, img, keep, any_size)
        for blk in cast(nn.ModuleList, self.sensor_blocks[sensor]):
            x = blk(x)
        if sensor in self.sensor_norm:
            x = self.sensor_norm[sensor](x)
        return x

    def forward_shared_part(self, x: torch.Tensor) -> torch.Tensor:
        """The shared blocks; every sequence is processed on its own (attention, Soft MoE routing)."""
        for blk in self.shared_blocks:
            x = blk(x)
        return x

    def forward_tokens(
        self, sensor: str, img: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Encode one sensor's image: (B, C, H, W) -> (B, 1 + K, D) tokens before the final norm."""
        return self.forward_shared_part(self.forward_sensor_part(sensor, img, keep))

    def forward_sensors(
        self,
        imgs: Mapping[str, torch.Tensor | None],
        keep: dict[str, torch.Tensor] | None = None,
        any_size: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Tokens before the final norm for each given sensor.

        When both sensors' sequences have the same length, the shared blocks run once on them
        stacked along the batch: the same result as two calls (each sequence is processed on its
        own), with twice-as-large matrix products and half the kernel launches.
        """
        x = {
            s: self.forward_sensor_part(s, img, None if keep is None else keep[s], any_size)
            for s, img in imgs.items()
            if img is not None
        }
        if len(x) == 2 and len(self.shared_blocks) and x["s1"].shape[1:] == x["s2"].shape[1:]:
            sizes = [v.shape[0] for v in x.values()]
            out = self.forward_shared_part(torch.cat(list(x.values())))
            return dict(zip(x, out.split(sizes), strict=True))
        return {s: self.forward_shared_part(v) for s, v in x.items()}

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pooled embedding ``fc_norm(mean(norm(tokens)[:, 1:]))`` (CLS excluded), (B, D)."""
        return self.fc_norm(self.norm(tokens)[:, 1:].mean(dim=1))

    def forward(
        self, s1: torch.Tensor | None = None, s2: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Pooled (B, D) embedding per given sensor (all patches visible).

        Any multiple of the patch size works as image size (position embeddings resampled).
        """
        tokens = self.forward_sensors({"s1": s1, "s2": s2}, any_size=True)
        return {s: self.pool(t) for s, t in tokens.items()}

    def forward_features(
        self,
        s1: torch.Tensor | None = None,
        s2: torch.Tensor | None = None,
        out_indices: Sequence[int] = (-1,),
        norm: bool = False,
    ) -> dict[str, list[torch.Tensor]]:
        """Per-sensor feature maps from chosen blocks, for dense heads (UPerNet, FPN).

        Args:
            s1: (B, C1, H, W) normalised Sentinel-1, or ``None``.
            s2: (B, C2, H, W) normalised Sentinel-2, or ``None``; H and W any multiples of the
                patch size (position embeddings are resampled for other sizes).
            out_indices: block indices over the ``depth`` blocks a sequence passes
                (sensor-specific first, then shared); negative indices count from the end.
            norm: apply the final ``norm`` to every returned map (by default the blocks' raw
                outputs, as timm's ``forward_intermediates``).

        Returns:
            ``{sensor: [(B, D, H / p, W / p) for each index in out_indices]}`` for each given
            sensor (the CLS token dropped).

        Raises:
            CsmoeError: no sensor given, an index out of range, or an input that does not fit.
        """
        if s1 is None and s2 is None:
            raise CsmoeError("forward_features needs s1, s2 or both")
        depth = self.depth
        try:
            wanted = [int(i) for i in out_indices]
        except (TypeError, ValueError):
            raise CsmoeError(f"out_indices must be ints, got {out_indices!r}") from None
        if not wanted:
            raise CsmoeError("out_indices is empty")
        bad = [i for i in wanted if not -depth <= i < depth]
        if bad:
            raise CsmoeError(f"out_indices {bad} out of range for {depth} blocks")
        resolved = [i % depth for i in wanted]
        last = max(resolved)
        out: dict[str, list[torch.Tensor]] = {}
        for sensor, img in (("s1", s1), ("s2", s2)):
            if img is None:
                continue
            h, w = img.shape[-2] // self.patch_size, img.shape[-1] // self.patch_size
            if self.transpose_hw:
                h, w = w, h
            x = self.embed(sensor, img, any_size=True)
            blocks = [*cast(nn.ModuleList, self.sensor_blocks[sensor]), *self.shared_blocks]
            taken: dict[int, torch.Tensor] = {}
            for i, blk in enumerate(blocks[: last + 1]):
                x = blk(x)
                if i in resolved:
                    taken[i] = x
                if i == self.depth_sensor - 1 and sensor in self.sensor_norm:
                    x = self.sensor_norm[sensor](x)
            maps = []
            for i in resolved:
                t = self.norm(taken[i]) if norm else taken[i]
                fmap = t[:, 1:].transpose(1, 2).reshape(t.shape[0], -1, h, w)
                maps.append(fmap.transpose(-2, -1) if self.transpose_hw else fmap)
            out[sensor] = maps
        return out


class Decoder(nn.Module):
    """MAE decoder: visible tokens at their positions + mask tokens elsewhere -> pixels per target.

    Args:
        enc_dim: encoder width.
        dim, depth, num_heads, mlp_ratio: decoder transformer sizes.
        grid_size: patches per side.
        targets: output width (``p * p * C``) per target sensor; one pixel head each.
    """

    pos_embed: torch.Tensor  # a buffer

    def __init__(
        self,
        enc_dim: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        grid_size: int,
        targets: dict[str, int],
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(enc_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer(
            "pos_embed", sincos_pos_embed_2d(dim, grid_size, cls_token=True), persistent=False
        )
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, norm_eps=DECODER_NORM_EPS) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=DECODER_NORM_EPS)
        self.heads = nn.ModuleDict({t: nn.Linear(dim, n) for t, n in targets.items()})

    def forward(
        self,
        latent: torch.Tensor,
        keep: torch.Tensor,
        num_patches: int,
        targets: list[list[str]],
    ) -> list[dict[str, torch.Tensor]]:
        """Decode ``latent`` (B, 1 + K, D_enc), its K tokens placed at ``keep`` (B, K), into pixels.

        The batch holds ``len(targets)`` equal chunks (e.g. the S1- and the S2-sourced latents);
        chunk ``i`` gets the heads named in ``targets[i]``: (B / len(targets), L, p*p*C) each.
        """
        x = self.embed(latent)
        b, _, d = x.shape
        # in place into the fresh copy of the mask tokens: one (B, L, D) buffer, not two
        full = self.mask_token.to(x.dtype).expand(b, num_patches, d).clone()
        full.scatter_(1, keep.unsqueeze(-1).expand(-1, -1, d), x[:, 1:])
        x = torch.cat([x[:, :1], full], dim=1) + self.pos_embed.to(x.dtype)
        for blk in self.blocks:
            x = blk(x)
        feats = self.norm(x)[:, 1:].chunk(len(targets))
        return [{t: self.heads[t](f) for t in ts} for f, ts in zip(feats, targets, strict=True)]


def nt_xent(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """NT-Xent (SimCLR) between paired embeddings: each of the 2N views has one positive.

    With ``gather`` (an all-gather across ranks whose backward sums gradients, e.g.
    ``torch.distributed.nn.functional.all_gather`` + ``torch.cat``) the loss is computed over the
    global batch on every rank; DDP's gradient averaging then yields the exact global gradient.
    """
    z1 = F.normalize(z1.float(), dim=-1)
    z2 = F.normalize(z2.float(), dim=-1)
    if gather is not None:
        z1, z2 = gather(z1), gather(z2)
    n = z1.shape[0]
    z = torch.cat([z1, z2], dim=0)
    sim = (z @ z.t()) / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    # built on the device: a CPU tensor copied over would synchronise host and GPU every step
    target = torch.arange(2 * n, device=z.device).roll(n)
    return F.cross_entropy(sim, target)


class CSMoE(nn.Module):
    """CSMAE-style cross-sensor masked autoencoder with optional Soft MoE encoder blocks.

    Build it with :func:`csmoe_model.build_model`. Inputs are normalised float tensors already at
    ``img_size`` (the loader resizes): ``s1`` (B, 2, H, W) and ``s2`` (B, C, H, W) in the band order
    of :mod:`csmoe_common.bands`.
    """

    def __init__(self, config: CsmoeConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.in_chans: dict[str, int] = dict(config.in_chans)
        self.img_size: int = config.resolved_img_size
        self.patch_size: int = config.patch_size
        self.encoder = CsmoeEncoder(config)
        #: normalisation statistics the weights were trained with (set by ``from_pretrained``)
        self.normalization: dict[str, list[float]] | None = None
        self.num_patches: int = self.encoder.num_patches
        grid = self.img_size // self.patch_size
        p2 = self.patch_size**2
        args = (
            config.embed_dim,
            config.decoder_dim,
            config.decoder_depth,
            config.decoder_heads,
            config.mlp_ratio,
            grid,
        )
        if config.w_uni == 0 and config.w_cross == 0:
            self.decoders = nn.ModuleDict()
        elif config.decoder == "common":
            self.decoders = nn.ModuleDict(
                {"common": Decoder(*args, {s: p2 * config.in_chans[s] for s in SENSORS})}
            )
        else:
            self.decoders = nn.ModuleDict(
                {s: Decoder(*args, {s: p2 * config.in_chans[s]}) for s in SENSORS}
            )
        self._check_visible()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """MAE initialisation (Xavier linears, N(0, 0.02) tokens); Soft MoE and patch embeddings their own."""
        self.apply(_init_weights)
        for m in self.modules():
            if isinstance(m, SoftMoE | PatchEmbed):
                m.reset_parameters()
        for p in self.encoder.cls_token.values():
            nn.init.normal_(p, std=0.02)
        for dec in self.decoders.values():
            nn.init.normal_(cast(Decoder, dec).mask_token, std=0.02)

    # ------------------------------------------------------------------ masking
    def num_visible(self) -> int:
        """Visible S1 patches per sample in training, CSMAE's ``int(L * (1 - mask_ratio))``."""
        return int(self.num_patches * (1.0 - self.config.mask_ratio))

    def num_visible_per_sensor(self) -> dict[str, int]:
        """Visible patches per sensor: S2's ratio is ``1 - mask_ratio`` with disjoint masking."""
        n, r = self.num_patches, self.config.mask_ratio
        k2 = (
            int(n * (1.0 - (1.0 - r)))
            if self.config.mask_mode == "disjoint"
            else int(n * (1.0 - r))
        )
        return {"s1": int(n * (1.0 - r)), "s2": k2}

    def _check_visible(self) -> None:
        k = self.num_visible_per_sensor()
        if min(k.values()) < 1:
            raise CsmoeError(
                f"mask_ratio {self.config.mask_ratio} with {self.config.mask_mode} masking leaves "
                f"{k} visible patches of {self.num_patches}: each sensor needs at least one"
            )

    def patch_orders(
        self,
        batch: int,
        device: torch.device | str,
        noise: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-sensor patch orders (B, L): the first ``num_visible_per_sensor()[s]`` are visible.

        As CSMAE's ``CSMAEBackbone.forward``: S1's order is ``argsort(noise_s1)``; ``identical``
        masking gives S2 the same order, ``disjoint`` the reversed order (S2 keeps the patches
        with the largest noise, exactly those S1 does not see), ``random`` its own
        ``argsort(noise_s2)``. The noise is ``torch.rand`` from the global RNG unless given (e.g.
        to reproduce a CSMAE training step).

        Raises:
            CsmoeError: for given noise of the wrong shape.
        """
        n = self.num_patches
        if noise is not None:
            need = ["s1"] + (["s2"] if self.config.mask_mode == "random" else [])
            for s in need:
                if s not in noise or tuple(noise[s].shape) != (batch, n):
                    raise CsmoeError(f"mask noise {s!r} must have shape ({batch}, {n})")
        noise_s1 = noise["s1"] if noise is not None else torch.rand(batch, n, device=device)
        order = {"s1": torch.argsort(noise_s1, dim=1)}
        mode = self.config.mask_mode
        if mode == "identical":
            order["s2"] = order["s1"]
        elif mode == "disjoint":
            order["s2"] = torch.flip(order["s1"], dims=[1])
        else:
            noise_s2 = noise["s2"] if noise is not None else torch.rand(batch, n, device=device)
            order["s2"] = torch.argsort(noise_s2, dim=1)
        return order

    def masks_from_orders(
        self, order: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``keep`` (B, K_s) visible indices in kept order and ``mask`` (B, L) bool, True where hidden."""
        counts = self.num_visible_per_sensor()
        keep = {s: o[:, : counts[s]] for s, o in order.items()}
        masks = {}
        for s, idx in keep.items():
            m = torch.ones(idx.shape[0], self.num_patches, dtype=torch.bool, device=idx.device)
            masks[s] = m.scatter(1, idx, False)
        return keep, masks

    def sample_masks(
        self,
        batch: int,
        device: torch.device | str,
        noise: dict[str, torch.Tensor] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Draw per-sample masks (global torch RNG, so ``torch.manual_seed`` makes them reproducible).

        Returns:
            ``keep``: (B, K_s) visible-patch indices per sensor (in CSMAE's kept order); ``mask``:
            (B, L) bool per sensor, True where hidden. See :meth:`patch_orders`.
        """
        return self.masks_from_orders(self.patch_orders(batch, device, noise))

    # ------------------------------------------------------------------ losses
    def _recon_target(self, img: torch.Tensor) -> torch.Tensor:
        """Patchified float32 target (B, L, p*p*C), per-patch normalised with ``norm_pix_loss``."""
        target = patchify(img.float(), self.patch_size)
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        return target

    def _recon_loss(
        self,
        pred: torch.Tensor,
        img: torch.Tensor,
        mask: torch.Tensor,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if target is None:
            target = self._recon_target(img)
        per_patch = (pred.float() - target).pow(2).mean(dim=-1)
        m = mask.to(per_patch.dtype)
        return (per_patch * m).sum() / m.sum().clamp_min(1.0)

    def reconstruction_plan(
        self,
        order: dict[str, torch.Tensor],
        keep: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor],
    ) -> list[tuple[str, str, torch.Tensor, torch.Tensor]]:
        """The active reconstruction terms as ``(source, target, placement, scored)``.

        ``placement`` (B, K_source) are the positions at which the decoder puts the source's
        tokens, ``scored`` (B, L) bool the patches the term is averaged over. Uni-sensor terms:
        the source's own visible positions, scored on its hidden patches. Cross-sensor terms by
        ``reconstruction`` (CSMAE's ``reconstruction_strategy``): ``disjoint`` as the uni-sensor
        terms; ``identical`` the first K_source positions of the target's order, scored on the
        target's hidden patches; with identical masking, the mirrored order (CSMAE's
        ``flip_restore``), scored on the visible patches (``flip_mask``).
        """
        cfg = self.config
        other = {"s1": "s2", "s2": "s1"}
        plan: list[tuple[str, str, torch.Tensor, torch.Tensor]] = []
        for src in SENSORS:
            if cfg.w_uni > 0:
                plan.append((src, src, keep[src], masks[src]))
        for src in SENSORS:
            dst = other[src]
            if cfg.w_cross <= 0:
                continue
            k = keep[src].shape[1]
            if cfg.reconstruction == "disjoint":
                plan.append((src, dst, keep[src], masks[src]))
            elif cfg.mask_mode == "identical":
                plan.append((src, dst, torch.flip(order[src], dims=[1])[:, :k], ~masks[src]))
            else:
                plan.append((src, dst, order[dst][:, :k], masks[dst]))
        return plan

    def _decode(
        self,
        latent: dict[str, torch.Tensor],
        requests: Sequence[tuple[str, str, torch.Tensor]],
    ) -> list[torch.Tensor]:
        """Predicted patches (B, L, p*p*C) for each ``(source, target, placement)`` request.

        Requests on the same decoder with the same source and placement share one pass (with
        the common decoder, one pass serves the uni- and the cross-sensor head, where CSMAE's code
        runs it twice); passes on the same decoder with latents of equal length run stacked along
        the batch.
        """
        passes: dict[str, list[tuple[str, torch.Tensor, list[int]]]] = {}
        for i, (src, dst, place) in enumerate(requests):
            dec_name = "common" if "common" in self.decoders else dst
            group = passes.setdefault(dec_name, [])
            for p_src, p_place, members in group:
                if p_src == src and (p_place is place or torch.equal(p_place, place)):
                    members.append(i)
                    break
            else:
                group.append((src, place, [i]))
        out: list[torch.Tensor | None] = [None] * len(requests)
        for dec_name, group in passes.items():
            dec = self.decoders[dec_name]
            by_len: dict[int, list[tuple[str, torch.Tensor, list[int]]]] = {}
            for item in group:
                by_len.setdefault(latent[item[0]].shape[1], []).append(item)
            for items in by_len.values():
                heads = [[requests[i][1] for i in members] for _, _, members in items]
                preds = dec(
                    torch.cat([latent[src] for src, _, _ in items]),
                    torch.cat([place for _, place, _ in items]),
                    self.num_patches,
                    heads,
                )
                for (_, _, members), chunk in zip(items, preds, strict=True):
                    for i in members:
                        out[i] = chunk[requests[i][1]]
        return [t for t in out if t is not None]

    def forward(
        self,
        s1: torch.Tensor,
        s2: torch.Tensor,
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
        noise: dict[str, torch.Tensor] | None = None,
    ) -> CsmoeOutput:
        """One training forward pass: mask, encode, decode, and compute the losses.

        Args:
            s1: (B, C1, H, W) normalised Sentinel-1 at ``img_size``.
            s2: (B, C2, H, W) normalised Sentinel-2 at ``img_size``.
            gather: optional all-gather across DDP ranks (with gradient) for the NT-Xent term.
            noise: optional mask noise ``{"s1": (B, L), "s2": (B, L)}`` (uniform, as CSMAE draws
                it; S2's is used with random masking only) instead of drawing it.

        Raises:
            CsmoeError: for inputs of the wrong shape.
        """
        cfg = self.config
        imgs = {"s1": s1, "s2": s2}
        if s1.shape[0] != s2.shape[0]:
            raise CsmoeError(f"s1 and s2 batch sizes differ: {s1.shape[0]} vs {s2.shape[0]}")
        order = self.patch_orders(s1.shape[0], s1.device, noise)
        keep, masks = self.masks_from_orders(order)
        tokens = self.encoder.forward_sensors(imgs, keep)
        losses: dict[str, torch.Tensor] = {}
        weighted: list[torch.Tensor] = []
        if cfg.w_uni > 0 or cfg.w_cross > 0:
            latent = {s: self.encoder.norm(tokens[s]) for s in SENSORS}
            plan = self.reconstruction_plan(order, keep, masks)
            preds = self._decode(latent, [(src, dst, place) for src, dst, place, _ in plan])
            # each sensor's target serves its uni- and its cross-sensor term: patchify it once, in
            # the orientation the encoder saw
            seen = {
                s: v.transpose(-2, -1) if self.encoder.transpose_hw else v for s, v in imgs.items()
            }
            tgt = {s: self._recon_target(seen[s]) for s in SENSORS}
            for (src, dst, _, scored), pred in zip(plan, preds, strict=True):
                uni = src == dst
                name = f"uni_{dst}" if uni else f"cross_{dst}"
                losses[name] = self._recon_loss(pred, seen[dst], scored, tgt[dst])
                weighted.append((cfg.w_uni if uni else cfg.w_cross) * losses[name])
        emb = {s: self.encoder.pool(tokens[s]) for s in SENSORS}
        if cfg.w_contrastive > 0:
            losses["contrastive"] = nt_xent(emb["s1"], emb["s2"], cfg.temperature, gather)
            weighted.append(cfg.w_contrastive * losses["contrastive"])
        loss = torch.stack(weighted).sum()
        return CsmoeOutput(loss=loss, losses=losses, embeddings=emb, masks=masks)

    # ------------------------------------------------------------------ inference API
    def encode(
        self, s1: torch.Tensor | None = None, s2: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Pooled (B, D) embeddings per given sensor, all patches visible; one sensor alone works.

        Raises:
            CsmoeError: if neither sensor is given or an input has the wrong shape.
        """
        if s1 is None and s2 is None:
            raise CsmoeError("encode needs s1, s2 or both")
        return self.encoder(s1=s1, s2=s2)

    def encode_tokens(
        self, s1: torch.Tensor | None = None, s2: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Normalised tokens (B, 1 + L, D) per given sensor (CLS first), e.g. for dense heads.

        Raises:
            CsmoeError: if neither sensor is given.
        """
        if s1 is None and s2 is None:
            raise CsmoeError("encode_tokens needs s1, s2 or both")
        tokens = self.encoder.forward_sensors({"s1": s1, "s2": s2}, any_size=True)
        return {s: self.encoder.norm(t) for s, t in tokens.items()}

    def forward_features(
        self,
        s1: torch.Tensor | None = None,
        s2: torch.Tensor | None = None,
        out_indices: Sequence[int] = (-1,),
        norm: bool = False,
    ) -> dict[str, list[torch.Tensor]]:
        """Per-sensor (B, D, H / p, W / p) feature maps from chosen blocks.

        See :meth:`CsmoeEncoder.forward_features`.

        Raises:
            CsmoeError: no sensor given, an index out of range, or an input that does not fit.
        """
        return self.encoder.forward_features(s1=s1, s2=s2, out_indices=out_indices, norm=norm)

    def select_bands(
        self, s1: Sequence[str] | None = None, s2: Sequence[str] | None = None
    ) -> CSMoE:
        """A copy of this model that takes only the named bands (e.g. ``s2=("B04", "B03", "B02")``).

        The patch embeddings keep the weight columns of the chosen bands in the given order;
        the copy's output equals this model's on inputs whose other bands are 0 (the band mean
        after normalisation). ``None`` keeps a sensor's bands. The copy's config records the
        band names (``config.bands``), so it saves and reloads as it is.

        Raises:
            CsmoeError: for an unknown or repeated band name or an empty selection.
        """
        import copy

        chosen: dict[str, tuple[str, ...]] = {}
        for sensor, names in (("s1", s1), ("s2", s2)):
            have = self.config.band_names(sensor)
            if names is None:
                chosen[sensor] = have
                continue
            if isinstance(names, str):
                names = [names]
            names = tuple(str(n) for n in names)
            missing = [n for n in names if n not in have]
            if missing:
                raise CsmoeError(
                    f"{sensor} bands {missing} are not inputs of this model (it takes "
                    f"{', '.join(have)})"
                )
            if not names or len(set(names)) != len(names):
                raise CsmoeError(f"{sensor} bands must be a non-empty list of distinct names")
            chosen[sensor] = names
        cfg = dataclasses.replace(
            self.config,
            in_chans={s: len(v) for s, v in chosen.items()},
            bands={s: list(v) for s, v in chosen.items()},
        )
        new = copy.deepcopy(self)
        new.config = cfg
        new.in_chans = dict(cfg.in_chans)
        for sensor, names in chosen.items():
            have = self.config.band_names(sensor)
            idx = [have.index(n) for n in names]
            emb = cast(PatchEmbed, new.encoder.patch_embed[sensor])
            old = emb.proj
            p = emb.patch_size
            proj = nn.Conv2d(len(idx), old.out_channels, kernel_size=p, stride=p)
            proj = proj.to(device=old.weight.device, dtype=old.weight.dtype)
            with torch.no_grad():
                proj.weight.copy_(old.weight[:, idx])
                if proj.bias is not None and old.bias is not None:
                    proj.bias.copy_(old.bias)
            emb.proj = proj
            emb.in_chans = len(idx)
        # reconstruction targets would change meaning: the copy is for encoding only
        new.decoders = nn.ModuleDict()
        return new

    @property
    def embed_dim(self) -> int:
        """Width of the pooled embedding."""
        return self.config.embed_dim

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything ``encode`` needs (keys relative to the encoder), e.g. for ``model.safetensors``."""
        return {k: v.detach() for k, v in self.encoder.state_dict().items()}

    def load_encoder_state_dict(
        self, state_dict: dict[str, torch.Tensor], strict: bool = True
    ) -> None:
        """Load weights saved by :meth:`encoder_state_dict`.

        Raises:
            CsmoeError: if keys or shapes do not match this architecture.
        """
        try:
            self.encoder.load_state_dict(state_dict, strict=strict)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise CsmoeError(
                f"encoder weights do not fit {self.config.name}: {' '.join(first[:3])}"
            ) from None

    def unused_in_training(self) -> set[str]:
        """Parameter names that get no gradient in :meth:`forward` with this config's loss weights.

        ``fc_norm`` (pooled embedding) serves only the NT-Xent term; ``encoder.norm`` feeds the
        decoders and the pool, so it is unused only when no term is active that needs either.
        DDP needs ``find_unused_parameters=True`` when this set is not empty.
        """
        cfg = self.config
        unused: set[str] = set()
        for name, _ in self.named_parameters():
            if cfg.w_contrastive == 0 and name.startswith("encoder.fc_norm."):
                unused.add(name)
        return unused

    def no_weight_decay(self, router: str = "vmoe") -> set[str]:
        """Parameter names to exclude from weight decay.

        Norms, biases (incl. expert biases), CLS and mask tokens are never decayed. The Soft MoE
        router follows ``router``:

        * ``"vmoe"`` (default): as google-research/vmoe's Soft MoE configs
          (``vmoe/projects/soft_moe/configs/pretrain_jft4b.py``): weight decay applies to
          ``.*/kernel`` (dense weights, incl. the experts') and to ``.*/Moe/Router/scale``; the
          slot parameters ``mu`` (our ``phi``) are not decayed.
        * ``"none"``: neither ``phi`` nor ``scale`` is decayed.

        Raises:
            CsmoeError: for another ``router`` value.
        """
        if router not in ("vmoe", "none"):
            raise CsmoeError(f"router weight decay must be 'vmoe' or 'none', got {router!r}")
        skip = set()
        for name, p in self.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            is_router = isinstance(
                self.get_submodule(name.rsplit(".", 1)[0]), SoftMoE
            ) and leaf in {
                "phi",
                "scale",
            }
            if is_router:
                if leaf == "phi" or router == "none":
                    skip.add(name)
                continue
            if p.ndim <= 1 or leaf in {"bias", "b1", "b2", "mask_token"} or ".cls_token." in name:
                skip.add(name)
        return skip

    def config_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict(self.config)``."""
        return dataclasses.asdict(self.config)
