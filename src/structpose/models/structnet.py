"""StructNet: the max-margin image-pose embedding of Li, Zhang & Chan (ICCV 2015), as a pose network here.

Li, Zhang & Chan, "Maximum-margin structured learning with deep networks for 3D human pose estimation"
(ICCV 2015, arXiv:1508.06708; extended in IJCV 122, 2017) score an (image, pose) pair with a network and
predict the training pose of best score. Tekin et al. (BMVC 2016) compare with it as "StructNet-Max" (the
best-scoring pose) and "StructNet-Avg" (the mean of the A best). This module is that method, built from the
same conv trunk as :class:`~structpose.models.cnn.PaperCNN` so the arms differ only in what they learn.

The model (shapes for J = 17 joints, ``E`` = ``StructNetConfig.embed_dim``):

* image branch (``.cnn``): the conv layers of ``CNNConfig`` (conv, ReLU, 2x2 max-pool each); the pooled
  outputs of the layers in ``concat_layers`` (default conv2 and conv3) are flattened and concatenated, then
  ``image_hidden`` fully connected layers (ReLU, dropout ``cnn.dropout``) give the image feature ``h``;
* image embedding ``f_I(x) = act(W_I h)`` (B, E); auxiliary regression head ``W_R h`` (B, 3J), the
  normalised pose (:class:`~structpose.models.normalize.PoseNormalizer`);
* pose embedding ``f_P(y) = act(W_2 relu(W_1 n(y)))`` (M, E) of the normalised pose ``n(y)`` (51-d):
  ``pose_hidden`` ReLU layers, then the embedding layer;
* score ``s(x, y) = f_I(x) . f_P(y)``, a plain (unnormalised) dot product; ``act`` is tanh by default, so
  ``|s| <= E``: the margins cannot be met by inflating the embeddings' norms; the product is divided by
  ``sqrt(E)`` (OUR choice, measured: with the plain product, on the embedded benchmark, the hinge's gradient
  turned off the image branch's ReLUs within the first hundred steps, active units falling from 26% to 2%,
  the image features became a constant and every prediction one training pose, 184 mm against the mean
  pose's 173; divided by ``sqrt(E)``, or with cosine scores, the units stay active and the network learns);
* training (:class:`~structpose.train.structnet_module.StructNetModule`): the margin-rescaled hinge
  ``max(0, max_y' [s(x, y') + Delta(y, y')] - s(x, y))`` with ``Delta = delta_scale * MPJPE(y, y')`` in mm,
  the max over ``n_candidates`` training poses drawn uniformly per batch plus the ``n_hard`` poses most often
  found most violated so far, plus ``aux_weight`` times the squared L2 loss of the regression head;
* inference (:meth:`StructNet.forward`): over the candidate set (the training poses,
  :meth:`StructNet.set_candidates`), the best-scoring pose (``mode="max"``) or the mean of the ``top_a``
  best (``mode="avg"``); ``top_a`` is chosen on validation data by :func:`choose_top_a`.

What the paper says, as far as we could check it. Only the abstract of the paper could be read (the stored
copies of arXiv:1508.06708 at arxiv-vanity.com, studylib.net and dokumen.tips, and of the IJCV version at
link.springer.com, searched for this module); the body of the paper was not reachable. CONFIRMED there:

* the network "takes an image and 3D pose as inputs and outputs a score value, which is high when the
  image-pose pair matches and low otherwise";
* a convolutional network extracts image features, "followed by two sub-networks for transforming the image
  features and pose into a joint embedding";
* "The score function is then the dot-product between the image and pose embeddings";
* embedding and score are "jointly trained using a maximum-margin cost function", "a special form of
  structured support vector machines";
* (Tekin et al.'s abstract, arXiv:1605.05180) such a max-margin framework "involves a high computational cost
  at inference time": inference scores many candidate poses, as here.

NOT CONFIRMED (from our reading of the method, not checked against the paper's text; on these points this is
a "StructNet-style" method):

* the image embedding from fully connected layers on the concatenated conv2 and conv3 features, and all
  layer widths (``embed_dim``, ``image_hidden``, ``pose_hidden``: our choices, 1024 each);
* the pose embedding as two fully connected layers on the 51-d pose, ReLU then tanh (our choice of
  activations), and no normalisation of the embeddings before the dot product;
* the margin-rescaled hinge with ``Delta`` a scaled MPJPE; ``delta_scale = 0.01`` per mm (OUR choice: a
  100 mm error asks for a margin of 1 in scores bounded by ``sqrt(E)`` = 32, so margins are reachable well
  inside tanh's linear range);
* the most-violated pose searched per batch over about 2000 uniformly drawn training poses plus the 10 most
  often violated ones;
* an auxiliary 3D pose regression head of weight 1 (on the image feature ``h``, squared L2 on normalised
  poses, like the other arms here);
* Max and Avg inference, and ``A`` about 0.5% of the candidate set (chosen here on validation data from a
  grid around it);
* the original initialised its conv layers from a detection network and froze them. Here the whole network
  trains FROM SCRATCH, with the same step budget as the other CNN arms (the caller's stage config), so that
  the comparison is of the objectives, not of pre-training.

Numerics: scores and ``Delta`` are computed in float32 with autocast off (in bf16 a score near 1000 has a
resolution of ~4, enough to flip the argmax). The candidates' pose embeddings are computed without gradient
in chunks and cached (N x E float32: 400 MB for N = 100k and E = 1024); the cache is recomputed whenever
the pose branch's weights or the normaliser change (compared exactly with a copy: version counters are not
enough, fused Adam does not bump them) or the candidates do.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from structpose.errors import ConfigError, InputError
from structpose.metrics import center_on_root, mpjpe
from structpose.models.cnn import CNNConfig, preprocess
from structpose.models.normalize import PoseNormalizer

Mode = Literal["max", "avg"]
MODES = ("max", "avg")
_EMBED_CHUNK = 8192  # candidate poses embedded (and scored) per step
_DELTA_ELEMS = 2**23  # J x B x M distances per step of mpjpe_matrix (32 MB in float32)


@dataclass(frozen=True)
class StructNetConfig:
    """The StructNet-specific settings (the conv trunk is the run's ``CNNConfig``); see the module docstring.

    Attributes:
        embed_dim: width ``E`` of the joint image-pose embedding.
        image_hidden: widths of the fully connected layers on the concatenated conv features.
        pose_hidden: widths of the hidden layers of the pose embedding (one: two FC layers in all).
        concat_layers: 0-based conv layers whose pooled outputs feed the image branch (conv2, conv3).
        embed_activation: ``"tanh"`` (bounded embeddings, the default) or ``"none"`` (linear).
        n_candidates: training poses drawn uniformly per training batch for the most-violated search.
        n_hard: the most often violated training poses added to them.
        delta_scale: ``Delta(y, y') = delta_scale * MPJPE(y, y')``, per mm.
        aux_weight: weight of the auxiliary pose regression loss (0: none).
        avg_fraction: default ``A`` of StructNet-Avg as a fraction of the candidate set (0.5%).
    """

    embed_dim: int = 1024
    image_hidden: tuple[int, ...] = (1024,)
    pose_hidden: tuple[int, ...] = (1024,)
    concat_layers: tuple[int, ...] = (1, 2)
    embed_activation: Literal["tanh", "none"] = "tanh"
    n_candidates: int = 2000
    n_hard: int = 10
    delta_scale: float = 0.01
    aux_weight: float = 1.0
    avg_fraction: float = 0.005

    def __post_init__(self) -> None:
        widths = (self.embed_dim, *self.image_hidden, *self.pose_hidden)
        if not all(_is_int(w) and w >= 1 for w in widths):
            raise ValueError(f"embed_dim and the hidden widths must be integers >= 1: {self}")
        layers = self.concat_layers
        if not layers or not all(_is_int(i) and i >= 0 for i in layers) or len(set(layers)) != len(layers):
            raise ValueError(f"concat_layers must be distinct conv-layer indices >= 0, got {layers}")
        if self.embed_activation not in ("tanh", "none"):
            raise ValueError(f"embed_activation must be 'tanh' or 'none', got {self.embed_activation!r}")
        if not (_is_int(self.n_candidates) and self.n_candidates >= 1 and _is_int(self.n_hard) and self.n_hard >= 0):
            raise ValueError(f"n_candidates must be >= 1 and n_hard >= 0 (integers): {self}")
        if not (math.isfinite(self.delta_scale) and self.delta_scale > 0):
            raise ValueError(f"delta_scale must be finite and > 0, got {self.delta_scale}")
        if not (math.isfinite(self.aux_weight) and self.aux_weight >= 0):
            raise ValueError(f"aux_weight must be finite and >= 0, got {self.aux_weight}")
        if not 0.0 < self.avg_fraction <= 1.0:
            raise ValueError(f"avg_fraction must lie in (0, 1], got {self.avg_fraction}")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ---- pure functions -------------------------------------------------------------------------------------
def _check_poses(poses: torch.Tensor, name: str, num_joints: int | None = None) -> None:
    if not isinstance(poses, torch.Tensor) or poses.ndim != 3 or poses.shape[-1] != 3 or poses.shape[1] < 1:
        raise InputError(f"{name}: expected a (N, J, 3) tensor, got {getattr(poses, 'shape', type(poses).__name__)}")
    if num_joints is not None and poses.shape[1] != num_joints:
        raise InputError(f"{name}: expected {num_joints} joints, got {tuple(poses.shape)}")


def mpjpe_matrix(true: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """Pairwise MPJPE, ``out[b, m] = mpjpe(true[b], cand[m])`` as :func:`structpose.metrics.mpjpe` defines it
    (each pose re-centred on its root joint 0, mean over all J joints of the Euclidean joint distances).

    Computed by the direct formula (no ``|a|^2 + |b|^2 - 2ab`` cancellation), without gradient, in float32
    (float64 stays float64), autocast off, ``2**23`` joint distances at a time.

    Args:
        true: (B, J, 3) poses, mm.
        cand: (M, J, 3) poses, mm.

    Returns:
        (B, M) MPJPE in mm.
    """
    _check_poses(true, "true")
    _check_poses(cand, "cand", true.shape[1])
    dtype = torch.float64 if torch.float64 in (true.dtype, cand.dtype) else torch.float32
    t = center_on_root(true.detach().to(dtype)).transpose(0, 1).contiguous()  # (J, B, 3)
    c = center_on_root(cand.detach().to(cand.device, dtype)).transpose(0, 1).contiguous()  # (J, M, 3)
    step = max(1, _DELTA_ELEMS // max(1, t.shape[0] * t.shape[1]))
    with torch.no_grad(), torch.autocast(t.device.type, enabled=False):
        parts = [torch.cdist(t, c[:, lo : lo + step], compute_mode="donot_use_mm_for_euclid_dist").mean(0)
                 for lo in range(0, c.shape[1], step)]  # fmt: skip
    return torch.cat(parts, 1) if parts else t.new_zeros(t.shape[1], 0)


def _check_scores(scores: torch.Tensor, score_true: torch.Tensor, delta: torch.Tensor) -> None:
    if not (isinstance(scores, torch.Tensor) and scores.ndim == 2 and scores.shape[1] >= 1):
        raise InputError(f"scores: expected (B, M) with M >= 1, got {getattr(scores, 'shape', None)}")
    if not (isinstance(score_true, torch.Tensor) and score_true.shape == scores.shape[:1]):
        raise InputError(f"score_true: expected ({scores.shape[0]},), got {getattr(score_true, 'shape', None)}")
    if not (isinstance(delta, torch.Tensor) and delta.shape == scores.shape):
        raise InputError(f"delta: expected {tuple(scores.shape)} like scores, got {getattr(delta, 'shape', None)}")


def most_violated(
    scores: torch.Tensor, score_true: torch.Tensor, delta: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss-augmented inference: the candidate of largest ``s(x, y') + Delta(y, y')`` per sample.

    Args:
        scores: (B, M) ``s(x_b, y'_m)``.
        score_true: (B,) ``s(x_b, y_b)`` of the true poses.
        delta: (B, M) ``Delta(y_b, y'_m)`` (same units as the scores).

    Returns:
        ``(indices, violation)``: (B,) int64 the argmax over m (ties: the lowest index) and (B,) its hinge
        ``max(0, scores[b, i] + delta[b, i] - score_true[b])``; both without gradient.
    """
    _check_scores(scores, score_true, delta)
    with torch.no_grad():
        augmented = scores.float() + delta.float()
        best, indices = augmented.max(1)
        return indices, (best - score_true.float()).clamp_min(0)


def margin_loss(scores: torch.Tensor, score_true: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """The margin-rescaled structured hinge, batch mean of ``max(0, max_m [s_bm + Delta_bm] - s_b)``.

    Differentiable in ``scores`` and ``score_true`` (the subgradient of the max flows to the argmax).

    Args:
        scores: (B, M) scores of candidate poses (M = 1: of the already found most violated pose).
        score_true: (B,) scores of the true poses.
        delta: (B, M) margins ``Delta(y_b, y'_m)``.

    Returns:
        Scalar loss (float32).
    """
    _check_scores(scores, score_true, delta)
    augmented = scores.float() + delta.float()
    return (augmented.max(1).values - score_true.float()).clamp_min(0).mean()


# ---- the network ----------------------------------------------------------------------------------------
class StructNetImageBranch(nn.Module):
    """Normalised crops (B, 3, crop, crop) -> image features ``h`` (B, H): PaperCNN's conv layers, the
    pooled outputs of ``concat_layers`` flattened and concatenated, then ``hidden`` (Linear, ReLU, dropout).

    ``cfg`` is the :class:`~structpose.models.cnn.CNNConfig` (``.cfg.crop`` is the evaluation crop).
    """

    def __init__(self, cfg: CNNConfig, concat_layers: Sequence[int], hidden: Sequence[int]):
        super().__init__()
        if max(concat_layers) >= len(cfg.channels):
            raise ConfigError(f"concat_layers {tuple(concat_layers)} name conv layers the CNN lacks "
                              f"(it has {len(cfg.channels)})")  # fmt: skip
        self.cfg = cfg
        self.concat_layers = tuple(sorted(concat_layers))
        blocks: list[nn.Module] = []
        in_ch, side, width = 3, cfg.crop, 0
        layers_used = list(zip(cfg.channels, cfg.kernels, strict=True))[: self.concat_layers[-1] + 1]
        for i, (ch, k) in enumerate(layers_used):  # (no conv layer after the last one used)
            blocks.append(nn.Sequential(nn.Conv2d(in_ch, ch, k), nn.ReLU(inplace=True), nn.MaxPool2d(2)))
            in_ch, side = ch, (side - k + 1) // 2
            width += ch * side * side if i in self.concat_layers else 0
        self.features = nn.Sequential(*blocks)
        layers: list[nn.Module] = []
        for w in hidden:
            layers += [nn.Linear(width, w), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout)]
            width = w
        self.head = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.cfg.crop
        if not (isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[1:] == (3, c, c)):
            raise InputError(f"expected normalised crops (B, 3, {c}, {c}), got {tuple(getattr(x, 'shape', ()))}")
        taken = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.concat_layers:
                taken.append(x.flatten(1))
        return self.head(torch.cat(taken, 1))


def _mlp(widths: Sequence[int], activation: str) -> nn.Sequential:
    """Linear layers ``widths[0] -> ... -> widths[-1]``, ReLU between them, ``activation`` after the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU(inplace=True))
    if activation == "tanh":
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def _version(t: torch.Tensor) -> int:
    try:
        return t._version
    except RuntimeError:  # an inference tensor has no version counter (it cannot change outside inference)
        return -1


class _EmbeddingCache:
    """The candidates' pose embeddings and copies of the weights they were computed with (shared by the mode
    views). Valid while those weights are unchanged, compared exactly (``torch.equal``): version counters
    are not enough, fused Adam updates parameters without bumping them."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.weights: list[torch.Tensor] = []
        self.candidates_key: tuple | None = None
        self.value: torch.Tensor | None = None

    def valid(self, weights: list[torch.Tensor], candidates_key: tuple) -> bool:
        if self.value is None or self.candidates_key != candidates_key or len(weights) != len(self.weights):
            return False
        pairs = list(zip(weights, self.weights, strict=True))
        if not all(a.shape == b.shape and a.device == b.device and a.dtype == b.dtype for a, b in pairs):
            return False
        return all(torch.equal(a, b) for a, b in pairs)

    def store(self, weights: list[torch.Tensor], candidates_key: tuple, value: torch.Tensor) -> torch.Tensor:
        self.weights = [w.detach().clone() for w in weights]
        self.candidates_key, self.value = candidates_key, value
        return value


class StructNet(nn.Module):
    """Image-pose scoring network; as a pose network, normalised crops (B, 3, crop, crop) -> poses (B, J, 3) mm
    by retrieval over the candidate set (module docstring).

    Attributes:
        cnn: the image branch (``cnn.cfg`` is the CNNConfig); image_embed, aux_head, pose_embed: the heads.
        normalizer: the pose normaliser (poses are embedded and regressed normalised).
        candidates: buffer (N, J, 3) mm, the poses inference chooses from (saved with the weights).
        avg_top_a: buffer, 0-d int64: the ``A`` of StructNet-Avg chosen by validation (0: unset, then
            ``round(avg_fraction * N)``), saved with the weights.
        mode, top_a: what :meth:`forward` does (see :meth:`with_mode`).
    """

    candidates: torch.Tensor
    avg_top_a: torch.Tensor

    def __init__(self, cnn_cfg: CNNConfig, normalizer: PoseNormalizer, cfg: StructNetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or StructNetConfig()
        self.cnn = StructNetImageBranch(cnn_cfg, cfg.concat_layers, cfg.image_hidden)
        self.normalizer = normalizer
        dim = 3 * normalizer.num_joints
        self.image_embed = _mlp((self.cnn.out_dim, cfg.embed_dim), cfg.embed_activation)
        self.aux_head = nn.Linear(self.cnn.out_dim, dim)
        self.pose_embed = _mlp((dim, *cfg.pose_hidden, cfg.embed_dim), cfg.embed_activation)
        self.register_buffer("candidates", torch.zeros(0, normalizer.num_joints, 3))
        self.register_buffer("avg_top_a", torch.zeros((), dtype=torch.int64))
        self.mode: Mode = "max"
        self.top_a: int | None = None
        self._cache = _EmbeddingCache()

    # ---- embeddings and scores ----------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised crops (B, 3, crop, crop) -> (image embeddings (B, E), regressed normalised poses (B, 3J))."""
        h = self.cnn(x)
        return self.image_embed(h), self.aux_head(h)

    def embed_poses(self, poses_mm: torch.Tensor) -> torch.Tensor:
        """Poses (M, J, 3) mm -> pose embeddings (M, E) (with gradient when enabled)."""
        _check_poses(poses_mm, "poses", self.normalizer.num_joints)
        return self.pose_embed(self.normalizer.normalize(poses_mm))

    @staticmethod
    def score(image_emb: torch.Tensor, pose_emb: torch.Tensor) -> torch.Tensor:
        """Scores ``s = image_emb @ pose_emb.T / sqrt(E)``: (B, E) x (M, E) -> (B, M), float32, autocast off."""
        if not (image_emb.ndim == 2 and pose_emb.ndim == 2 and image_emb.shape[1] == pose_emb.shape[1]):
            raise InputError(f"expected (B, E) and (M, E) embeddings, got {tuple(image_emb.shape)} "
                             f"and {tuple(pose_emb.shape)}")  # fmt: skip
        with torch.autocast(image_emb.device.type, enabled=False):
            return image_emb.float() @ pose_emb.float().T / math.sqrt(image_emb.shape[1])

    def regress(self, x: torch.Tensor) -> torch.Tensor:
        """The auxiliary head's poses: normalised crops (B, 3, crop, crop) -> (B, J, 3) mm."""
        return self.normalizer.denormalize(self.encode(x)[1])

    # ---- the candidate set --------------------------------------------------------------------------
    def set_candidates(self, poses_mm: torch.Tensor) -> StructNet:
        """Register the poses inference chooses from (N, J, 3) mm (N >= 1, finite; float32 copy); returns self."""
        poses_mm = torch.as_tensor(poses_mm)
        _check_poses(poses_mm, "candidates", self.normalizer.num_joints)
        if len(poses_mm) < 1 or not bool(torch.isfinite(poses_mm).all()):
            raise InputError(f"candidates: expected N >= 1 finite poses, got {tuple(poses_mm.shape)}")
        self.candidates = poses_mm.detach().to(self.candidates.device, torch.float32).clone()
        self._cache.clear()
        return self

    def set_top_a(self, top_a: int) -> StructNet:
        """Store the validated ``A`` of StructNet-Avg in the weights (:attr:`avg_top_a`); returns self."""
        if not _is_int(top_a) or top_a < 1:
            raise InputError(f"top_a must be an integer >= 1, got {top_a!r}")
        self.avg_top_a.fill_(int(top_a))
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # weights of a net with another number of candidates load as they are: the buffer takes their shape
        stored = state_dict.get(prefix + "candidates")
        if isinstance(stored, torch.Tensor) and stored.shape != self.candidates.shape:
            self.candidates = torch.empty(stored.shape, dtype=self.candidates.dtype, device=self.candidates.device)
        self._cache.clear()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def candidate_embeddings(self) -> torch.Tensor:
        """(N, E) float32 pose embeddings of :attr:`candidates`, no gradient, cached until the pose branch,
        the normaliser or the candidates change."""
        if len(self.candidates) == 0:
            raise InputError("StructNet has no candidate poses: call set_candidates(training poses) first")
        weights = [*self.pose_embed.parameters(), *self.normalizer.buffers()]
        c = self.candidates
        candidates_key = (c.device, c.dtype, tuple(c.shape), c.data_ptr(), _version(c))
        if not self._cache.valid(weights, candidates_key):
            with torch.no_grad():
                chunks = [self.embed_poses(part).float() for part in c.split(_EMBED_CHUNK)]
            self._cache.store(weights, candidates_key, torch.cat(chunks))
        return self._cache.value

    def top_candidates(self, image_emb: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` best-scoring candidates per image embedding (B, E): (scores (B, k) descending, indices
        (B, k) into :attr:`candidates`), scored chunk by chunk with a running top-k; no gradient."""
        cand = self.candidate_embeddings()
        if not _is_int(k) or not 1 <= k <= len(cand):
            raise InputError(f"k must be an integer in [1, {len(cand)}] (the candidates), got {k!r}")
        with torch.no_grad():
            best_s = image_emb.new_empty(len(image_emb), 0, dtype=torch.float32)
            best_i = torch.empty(len(image_emb), 0, dtype=torch.long, device=image_emb.device)
            for lo in range(0, len(cand), _EMBED_CHUNK):
                s = self.score(image_emb, cand[lo : lo + _EMBED_CHUNK])
                i = torch.arange(lo, lo + s.shape[1], device=s.device).expand_as(s)
                best_s, pick = torch.cat([best_s, s], 1).topk(min(k, best_s.shape[1] + s.shape[1]), dim=1)
                best_i = torch.cat([best_i, i], 1).gather(1, pick)
        return best_s, best_i

    # ---- inference ----------------------------------------------------------------------------------
    def resolve_top_a(self, top_a: int | None = None) -> int:
        """The ``A`` of StructNet-Avg: ``top_a``, else :attr:`avg_top_a` if set, else ``round(avg_fraction *
        N)``; at least 1 and at most N."""
        n = len(self.candidates)
        if top_a is None:
            top_a = int(self.avg_top_a) or max(1, round(self.cfg.avg_fraction * n))
        if not _is_int(top_a) or top_a < 1:
            raise InputError(f"top_a must be an integer >= 1, got {top_a!r}")
        return max(1, min(int(top_a), n))

    def poses_from_embedding(
        self, image_emb: torch.Tensor, mode: Mode = "max", top_a: int | None = None
    ) -> torch.Tensor:
        """Image embeddings (B, E) -> poses (B, J, 3) mm: the best candidate (``"max"``) or the mean of the
        ``top_a`` best (``"avg"``, :meth:`resolve_top_a`)."""
        if mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {mode!r}")
        k = 1 if mode == "max" else self.resolve_top_a(top_a)
        _, idx = self.top_candidates(image_emb, k)
        return self.candidates[idx].mean(1)  # (B, k, J, 3) -> (B, J, 3)

    def predict(self, x: torch.Tensor, mode: Mode = "max", top_a: int | None = None) -> torch.Tensor:
        """Normalised crops (B, 3, crop, crop) -> poses (B, J, 3) mm by :meth:`poses_from_embedding`."""
        with torch.no_grad():
            return self.poses_from_embedding(self.encode(x)[0], mode, top_a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised crops (B, 3, crop, crop) -> poses (B, J, 3) mm in this view's :attr:`mode`/:attr:`top_a`
        (no gradient: the output is a candidate pose or a mean of them)."""
        return self.predict(x, self.mode, self.top_a)

    def with_mode(self, mode: Mode, top_a: int | None = None) -> StructNet:
        """A view of this network predicting in ``mode`` (``"max"``: StructNet-Max, ``"avg"``: StructNet-Avg
        with ``top_a``, default :meth:`resolve_top_a`): a shallow copy sharing every parameter, buffer,
        submodule and the embedding cache (so training, loading or moving one moves all; the state_dict keys
        are the same)."""
        if mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {mode!r}")
        if top_a is not None and (not _is_int(top_a) or top_a < 1):
            raise InputError(f"top_a must be an integer >= 1, got {top_a!r}")
        view = copy.copy(self)
        view.mode, view.top_a = mode, top_a
        return view


# ---- choosing A on validation data ----------------------------------------------------------------------
def default_top_a_grid(n_candidates: int, fraction: float = 0.005) -> list[int]:
    """Candidate values of ``A`` around ``fraction`` of ``n_candidates``: 1/4, 1/2, 1, 2 and 4 times
    ``round(fraction * n)`` (at least 1, at most n), distinct, ascending."""
    if not _is_int(n_candidates) or n_candidates < 1:
        raise InputError(f"n_candidates must be an integer >= 1, got {n_candidates!r}")
    base = max(1.0, fraction * n_candidates)
    return sorted({min(n_candidates, max(1, round(base * f))) for f in (0.25, 0.5, 1.0, 2.0, 4.0)})


def _batches(data: torch.Tensor | Dataset, poses: torch.Tensor | None, batch_size: int) -> Iterable[tuple]:
    """(uint8 images (b, 3, S, S), poses (b, J, 3) mm) batches of a tensor pair or of a dataset's items."""
    if isinstance(data, torch.Tensor):
        if poses is None or len(poses) != len(data):
            raise InputError("images given as a tensor need their poses (N, J, 3) mm, one per image")
        poses = torch.as_tensor(poses)
        for lo in range(0, len(data), batch_size):
            yield data[lo : lo + batch_size], poses[lo : lo + batch_size]
        return
    if poses is not None:
        raise InputError("a dataset carries its own poses: pass poses=None")
    for batch in DataLoader(data, batch_size=batch_size, shuffle=False):
        yield batch["image"], batch["pose3d"]


def top_a_errors(
    net: StructNet,
    data: torch.Tensor | Dataset,
    poses: torch.Tensor | None = None,
    grid: Sequence[int] | None = None,
    batch_size: int = 256,
) -> dict[int, float]:
    """The mean MPJPE (mm) of StructNet-Avg for each ``A`` of ``grid`` on validation data (one retrieval pass).

    Args:
        net: a trained :class:`StructNet` with its candidate set; it is put in eval mode.
        data: uint8 images (N, 3, S, S) with ``poses``, or a dataset of ``{"image", "pose3d"}`` items.
        poses: (N, J, 3) mm true poses of tensor ``data`` (None for a dataset).
        grid: the values of ``A`` (default :func:`default_top_a_grid` of the candidate set).
        batch_size: images per step (centre crops, :func:`~structpose.models.cnn.preprocess`).

    Returns:
        ``{A: mean MPJPE in mm}`` for each A of the grid (clipped to the candidate count).
    """
    n = len(net.candidates)
    grid = default_top_a_grid(n, net.cfg.avg_fraction) if grid is None else grid
    if not grid or not all(_is_int(a) and a >= 1 for a in grid):
        raise InputError(f"grid: expected integers >= 1, got {grid!r}")
    grid = sorted({min(int(a), n) for a in grid})
    device = net.candidates.device
    net.eval()
    sums, count = dict.fromkeys(grid, 0.0), 0
    with torch.no_grad():
        for images, true in _batches(data, poses, batch_size):
            emb = net.encode(preprocess(images.to(device), train=False, crop=net.cnn.cfg.crop))[0]
            _, idx = net.top_candidates(emb, grid[-1])
            ranked = net.candidates[idx]  # (b, A_max, J, 3)
            for a in grid:
                err = mpjpe(ranked[:, :a].mean(1), true.to(device, torch.float32), reduce=False)
                sums[a] += float(err.double().sum())
            count += len(images)
    if count == 0:
        raise InputError("no validation sample to choose A on")
    return {a: s / count for a, s in sums.items()}


def choose_top_a(
    net: StructNet,
    data: torch.Tensor | Dataset,
    poses: torch.Tensor | None = None,
    grid: Sequence[int] | None = None,
    batch_size: int = 256,
) -> int:
    """The ``A`` of ``grid`` of least mean validation MPJPE (:func:`top_a_errors`; ties: the smaller A).

    Pass VALIDATION data (never the test set). Store the result with ``net.set_top_a(A)``.
    """
    errors = top_a_errors(net, data, poses, grid, batch_size)
    return min(errors, key=lambda a: (errors[a], a))
