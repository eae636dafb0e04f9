"""CSMoE: the CSMAE cross-sensor masked autoencoder with optional Soft MoE blocks.

Encoder (CSMAE, Hackstein et al. 2024): per sensor a patch embedding and a CLS token, fixed 2-D
sin-cos positions shared by both sensors, ``depth_sensor`` sensor-specific blocks, then
``depth_shared`` shared blocks that process each sensor's sequence separately (same weights, no
cross-attention). Any encoder block may use a Soft MoE feed-forward (``moe_blocks``); in a shared
block the experts are shared by both sensors while routing stays per sequence.

Objective: masked reconstruction within (S1<-S1, S2<-S2) and across sensors (S1<-S2, S2<-S1:
the other sensor decoded from this sensor's visible tokens at their positions), MSE on the patches
hidden from the source sensor, plus NT-Xent between the pooled S1 and S2 embeddings of a pair.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from csmoe_model.errors import CsmoeError
from csmoe_model.layers import Block, PatchEmbed, SoftMoE, sincos_pos_embed_2d

SENSORS: tuple[str, str] = ("s1", "s2")
NATIVE_SIZE = 120  # BigEarthNet patches: 120 x 120 px at 10 m
MASK_MODES = ("random", "identical", "disjoint")
DECODERS = ("common", "specific")
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
        in_chans: bands per sensor, ``{"s1": 2, "s2": 10 | 12}``.
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
        mask_mode: ``"random"`` (independent per sensor), ``"identical"`` or ``"disjoint"``.
        mask_ratio: fraction of patches hidden from the encoder.
        norm_pix_loss: reconstruct per-patch normalised pixels.
        w_uni, w_cross, w_contrastive: loss weights (0 switches a term off).
        temperature: NT-Xent temperature.
    """

    name: str = "custom"
    img_size: int | None = None
    patch_size: int = 15
    in_chans: dict[str, int] = field(default_factory=lambda: {"s1": 2, "s2": 12})
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
    norm_pix_loss: bool = False
    w_uni: float = 1.0
    w_cross: float = 1.0
    w_contrastive: float = 1.0
    temperature: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.moe_blocks, tuple):
            self.moe_blocks = list(self.moe_blocks)
        self.in_chans = dict(self.in_chans)
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
            self.mask_mode != "disjoint" or self.mask_ratio >= 0.5,
            "disjoint masking needs mask_ratio >= 0.5",
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
    """Sensor-specific patch embeddings, CLS tokens and blocks, then shared blocks and norms."""

    pos_embed: torch.Tensor  # a buffer

    def __init__(self, cfg: CsmoeConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.embed_dim = d
        img = cfg.resolved_img_size
        self.patch_embed = nn.ModuleDict(
            {s: PatchEmbed(img, cfg.patch_size, cfg.in_chans[s], d) for s in SENSORS}
        )
        embed_s1 = cast(PatchEmbed, self.patch_embed["s1"])
        self.num_patches: int = embed_s1.num_patches
        self.cls_token = nn.ParameterDict({s: nn.Parameter(torch.zeros(1, 1, d)) for s in SENSORS})
        # fixed, recomputed at build time: not part of the state dict
        self.register_buffer(
            "pos_embed", sincos_pos_embed_2d(d, embed_s1.grid_size), persistent=False
        )
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
            )

        self.sensor_blocks = nn.ModuleDict(
            {s: nn.ModuleList(block(i) for i in range(cfg.depth_sensor)) for s in SENSORS}
        )
        self.shared_blocks = nn.ModuleList(
            block(cfg.depth_sensor + i) for i in range(cfg.depth_shared)
        )
        self.norm = nn.LayerNorm(d, eps=1e-6)  # tokens handed to the decoder
        self.fc_norm = nn.LayerNorm(d, eps=1e-6)  # pooled embedding

    def forward_sensor_part(
        self, sensor: str, img: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Patch embedding, positions, masking, CLS token and the sensor-specific blocks.

        Args:
            sensor: ``"s1"`` or ``"s2"``.
            img: (B, C, H, W) normalised image at the model's ``img_size``.
            keep: (B, K) indices of the visible patches, or ``None`` for all.

        Returns:
            (B, 1 + K, D) tokens, CLS first.
        """
        x = self.patch_embed[sensor](img) + self.pos_embed.to(img.dtype)
        if keep is not None:
            x = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = torch.cat([self.cls_token[sensor].expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        for blk in cast(nn.ModuleList, self.sensor_blocks[sensor]):
            x = blk(x)
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
    ) -> dict[str, torch.Tensor]:
        """Tokens before the final norm for each given sensor.

        When both sensors' sequences have the same length, the shared blocks run once on them
        stacked along the batch: the same result as two calls (each sequence is processed on its
        own), with twice-as-large matrix products and half the kernel launches.
        """
        x = {
            s: self.forward_sensor_part(s, img, None if keep is None else keep[s])
            for s, img in imgs.items()
            if img is not None
        }
        if len(x) == 2 and len(self.shared_blocks) and x["s1"].shape[1:] == x["s2"].shape[1:]:
            sizes = [v.shape[0] for v in x.values()]
            out = self.forward_shared_part(torch.cat(list(x.values())))
            return dict(zip(x, out.split(sizes), strict=True))
        return {s: self.forward_shared_part(v) for s, v in x.items()}

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pooled embedding: norm of the mean of the patch tokens (CLS excluded), (B, D)."""
        return self.fc_norm(tokens[:, 1:].mean(dim=1))

    def forward(
        self, s1: torch.Tensor | None = None, s2: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Pooled (B, D) embedding per given sensor (all patches visible)."""
        tokens = self.forward_sensors({"s1": s1, "s2": s2})
        return {s: self.pool(t) for s, t in tokens.items()}


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
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.heads = nn.ModuleDict({t: nn.Linear(dim, n) for t, n in targets.items()})

    def forward(
        self,
        latent: torch.Tensor,
        keep: torch.Tensor,
        num_patches: int,
        targets: list[list[str]],
    ) -> list[dict[str, torch.Tensor]]:
        """Decode ``latent`` (B, 1 + K, D_enc), visible at ``keep`` (B, K), into pixels.

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
        """Visible patches per sensor during training, ``int(L * (1 - mask_ratio))`` (at least 1)."""
        return max(1, int(self.num_patches * (1.0 - self.config.mask_ratio)))

    def sample_masks(
        self, batch: int, device: torch.device | str
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Draw per-sample masks (global torch RNG, so ``torch.manual_seed`` makes them reproducible).

        Returns:
            ``keep``: (B, K) sorted visible-patch indices per sensor; ``mask``: (B, L) bool per
            sensor, True where hidden. ``random`` draws each sensor independently, ``identical``
            shares one draw, ``disjoint`` gives the sensors non-overlapping visible sets.
        """
        n, k = self.num_patches, self.num_visible()
        mode = self.config.mask_mode
        order = torch.rand(batch, n, device=device).argsort(dim=1)
        if mode == "random":
            other = torch.rand(batch, n, device=device).argsort(dim=1)
            keep = {"s1": order[:, :k], "s2": other[:, :k]}
        elif mode == "identical":
            keep = {"s1": order[:, :k], "s2": order[:, :k]}
        else:
            keep = {"s1": order[:, :k], "s2": order[:, k : 2 * k]}
        keep = {s: v.sort(dim=1).values for s, v in keep.items()}
        masks = {}
        for s, idx in keep.items():
            m = torch.ones(batch, n, dtype=torch.bool, device=device)
            masks[s] = m.scatter(1, idx, False)
        return keep, masks

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

    def _decode(
        self,
        latent: dict[str, torch.Tensor],
        keep: dict[str, torch.Tensor],
        targets: dict[str, list[str]],
    ) -> dict[str, dict[str, torch.Tensor]]:
        """Predicted patches ``pred[source][target]`` (B, L, p*p*C) from each source's latent.

        Passes on the same decoder run once with the sources stacked along the batch. With the
        common decoder one pass per source serves both its uni- and cross-sensor head (CSMAE's
        code runs it twice).
        """
        pred: dict[str, dict[str, torch.Tensor]] = {s: {} for s in latent}
        if "common" in self.decoders:
            runs = {"common": [s for s in latent if targets[s]]}
        else:
            runs = {t: [s for s in latent if t in targets[s]] for t in SENSORS}
        for dec_name, sources in runs.items():
            if not sources:
                continue
            dec = self.decoders[dec_name]
            heads = [[t for t in targets[s] if dec_name in ("common", t)] for s in sources]
            out = dec(
                torch.cat([latent[s] for s in sources]),
                torch.cat([keep[s] for s in sources]),
                self.num_patches,
                heads,
            )
            for src, preds in zip(sources, out, strict=True):
                pred[src].update(preds)
        return pred

    def forward(
        self,
        s1: torch.Tensor,
        s2: torch.Tensor,
        gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> CsmoeOutput:
        """One training forward pass: mask, encode, decode, and compute the losses.

        Args:
            s1: (B, 2, H, W) normalised Sentinel-1 at ``img_size``.
            s2: (B, C, H, W) normalised Sentinel-2 at ``img_size``.
            gather: optional all-gather across DDP ranks (with gradient) for the NT-Xent term.

        Raises:
            CsmoeError: for inputs of the wrong shape.
        """
        cfg = self.config
        imgs = {"s1": s1, "s2": s2}
        if s1.shape[0] != s2.shape[0]:
            raise CsmoeError(f"s1 and s2 batch sizes differ: {s1.shape[0]} vs {s2.shape[0]}")
        keep, masks = self.sample_masks(s1.shape[0], s1.device)
        tokens = self.encoder.forward_sensors(imgs, keep)
        losses: dict[str, torch.Tensor] = {}
        weighted: list[torch.Tensor] = []
        if cfg.w_uni > 0 or cfg.w_cross > 0:
            other = {"s1": "s2", "s2": "s1"}
            targets = {
                src: ([src] if cfg.w_uni > 0 else []) + ([other[src]] if cfg.w_cross > 0 else [])
                for src in SENSORS
            }
            latent = {s: self.encoder.norm(tokens[s]) for s in SENSORS}
            pred = self._decode(latent, keep, targets)
            # each sensor's target serves its uni- and its cross-sensor term: patchify it once
            tgt = {s: self._recon_target(imgs[s]) for s in SENSORS}
            for src in SENSORS:
                dst = other[src]
                # both targets are scored on the patches the source sensor did not see
                if cfg.w_uni > 0:
                    losses[f"uni_{src}"] = self._recon_loss(
                        pred[src][src], imgs[src], masks[src], tgt[src]
                    )
                    weighted.append(cfg.w_uni * losses[f"uni_{src}"])
                if cfg.w_cross > 0:
                    losses[f"cross_{dst}"] = self._recon_loss(
                        pred[src][dst], imgs[dst], masks[src], tgt[dst]
                    )
                    weighted.append(cfg.w_cross * losses[f"cross_{dst}"])
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
        tokens = self.encoder.forward_sensors({"s1": s1, "s2": s2})
        return {s: self.encoder.norm(t) for s, t in tokens.items()}

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

        ``fc_norm`` (pooled embedding) serves only the NT-Xent term and ``encoder.norm`` only the
        decoders; DDP needs ``find_unused_parameters=True`` when this set is not empty.
        """
        cfg = self.config
        unused: set[str] = set()
        for name, _ in self.named_parameters():
            if cfg.w_contrastive == 0 and name.startswith("encoder.fc_norm."):
                unused.add(name)
            if cfg.w_uni == 0 and cfg.w_cross == 0 and name.startswith("encoder.norm."):
                unused.add(name)
        return unused

    def no_weight_decay(self) -> set[str]:
        """Parameter names to exclude from weight decay: norms, biases, tokens, Soft MoE scale."""
        skip = set()
        for name, p in self.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if (
                p.ndim <= 1
                or leaf in {"bias", "b1", "b2", "scale", "mask_token"}
                or ".cls_token." in name
            ):
                skip.add(name)
        return skip

    def config_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict(self.config)``."""
        return dataclasses.asdict(self.config)
