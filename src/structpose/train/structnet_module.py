"""Training StructNet (Li, Zhang & Chan, ICCV 2015) with the max-margin objective; see
:mod:`structpose.models.structnet` for the model and for which details are the paper's.

A training step (batch of B images, their true poses ``y``):

1. random crops (:func:`~structpose.models.cnn.preprocess`, as :class:`~structpose.train.image_module.
   ImageRegressionModule`), image embeddings ``f_I(x)`` and the auxiliary regression;
2. the candidate set: ``n_candidates`` training poses drawn uniformly without replacement (all of them when
   there are fewer), plus the ``n_hard`` training poses found most violated most often so far;
3. loss-augmented inference without gradient: per sample the candidate ``y'`` of largest
   ``s(x, y') + Delta(y, y')`` (:func:`~structpose.models.structnet.most_violated`),
   ``Delta = delta_scale * MPJPE`` (mm);
4. loss ``max(0, s(x, y') + Delta(y, y') - s(x, y)) + aux_weight * |aux(x) - n(y)|^2`` (batch means; the
   pose branch is run again, with gradient, on the B true and B most-violated poses only: the same
   subgradient as through the max over all candidates, at a fraction of the cost);
5. the counter :attr:`StructNetModule.violation_counts` (a buffer: in the checkpoint) adds one to every
   training pose that was the most violated of a sample with a positive hinge (summed over DDP ranks).

The draws use torch's global CPU generator, which the base class checkpoints, so a resumed run draws the
same candidates. Validation draws nothing: its candidates are ``n_candidates`` evenly spaced training poses
plus the hard ones, and ``val/mpjpe_mm`` is the error of StructNet-Max over ALL the training poses (the net's
candidate set), as the other stages log it; ``val/mpjpe_avg_mm`` (the default ``A``) and
``val/mpjpe_reg_mm`` (the regression head) come with it. Training logs ``train/margin_loss``,
``train/violation_rate`` (the fraction of samples with a positive hinge) and ``train/aux_loss`` per step.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from structpose.errors import InputError
from structpose.models.cnn import preprocess
from structpose.models.structnet import StructNet, margin_loss, most_violated, mpjpe_matrix
from structpose.train.base import StageModule, mpjpe_mm


def _rowwise_score(image_emb: torch.Tensor, pose_emb: torch.Tensor) -> torch.Tensor:
    """``s(x_b, y_b)`` of paired embeddings (B, E), (B, E) -> (B,), float32, autocast off: the diagonal of
    :meth:`StructNet.score`."""
    with torch.autocast(image_emb.device.type, enabled=False):
        return (image_emb.float() * pose_emb.float()).sum(1) / math.sqrt(image_emb.shape[1])


class StructNetModule(StageModule):
    """Fits a :class:`~structpose.models.structnet.StructNet` (module docstring).

    Args:
        net: the network; its candidate set becomes ``train_poses`` (before fitting, so validation and the
            saved weights use it).
        train_poses: (N, J, 3) mm, the training poses the candidates are drawn from (the training split's
            ``poses3d``, in any order: the counter is indexed by it).
        crop: training crop in px (default ``net.cnn.cfg.crop``).
        channels_last: NHWC inputs and conv weights.

    Batches: ``{"image": uint8 (B, 3, S, S), "pose3d": float (B, J, 3) mm}``.
    """

    violation_counts: torch.Tensor
    train_poses: torch.Tensor

    def __init__(self, net: StructNet, train_poses: np.ndarray | torch.Tensor, crop: int | None = None,
                 channels_last: bool = False) -> None:  # fmt: skip
        super().__init__()
        if not isinstance(net, StructNet):
            raise InputError(f"StructNetModule trains a StructNet, got {type(net).__name__}")
        poses = torch.as_tensor(np.asarray(train_poses), dtype=torch.float32)
        joints = net.normalizer.num_joints
        if not (poses.ndim == 3 and poses.shape[1:] == (joints, 3) and len(poses) >= 1):
            raise InputError(f"train_poses: expected (N >= 1, {joints}, 3) mm, got {tuple(poses.shape)}")
        if not bool(torch.isfinite(poses).all()):
            raise InputError("train_poses hold NaN/inf: check the dataset and rebuild it")
        self.net = net
        self.crop = net.cnn.cfg.crop if crop is None else crop
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        net.to(memory_format=self.memory_format)
        net.set_candidates(poses)
        self.register_buffer("train_poses", poses, persistent=False)  # the net's candidates hold them too
        self.register_buffer("violation_counts", torch.zeros(len(poses), dtype=torch.long))
        self._train_parts: dict[str, torch.Tensor] = {}

    # ---- candidates -----------------------------------------------------------------------------------
    def hard_indices(self) -> torch.Tensor:
        """(<= n_hard,) int64: the training poses most often most violated so far (count > 0; ties: lowest
        index first)."""
        k = min(self.net.cfg.n_hard, len(self.violation_counts))
        if k == 0:
            return torch.zeros(0, dtype=torch.long, device=self.violation_counts.device)
        order = torch.sort(self.violation_counts, descending=True, stable=True).indices[:k]
        return order[self.violation_counts[order] > 0]

    def candidate_indices(self, train: bool) -> torch.Tensor:
        """(M,) int64 training-pose indices of this step's candidates: ``n_candidates`` drawn uniformly
        without replacement from torch's global generator (``train``) or evenly spaced (validation: no
        draw), then the hard ones (which may repeat a drawn one: harmless)."""
        n, m = len(self.train_poses), self.net.cfg.n_candidates
        if n <= m:
            drawn = torch.arange(n)
        elif train:
            drawn = torch.randperm(n)[:m]
        else:
            drawn = torch.arange(m) * n // m
        return torch.cat([drawn.to(self.train_poses.device), self.hard_indices()])

    def _count(self, hits: torch.Tensor) -> None:
        """Add one per training-pose index in ``hits`` (this rank's; gathered over DDP ranks, -1 = none)."""
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            hits = self.all_gather(hits).flatten()
        hits = hits[hits >= 0]
        self.violation_counts.index_add_(0, hits, torch.ones_like(hits))

    # ---- the step -------------------------------------------------------------------------------------
    def step(self, batch: dict[str, torch.Tensor], train: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        net, cfg = self.net, self.net.cfg
        x = preprocess(batch["image"], train=train, crop=self.crop).contiguous(memory_format=self.memory_format)
        pose = batch["pose3d"].float()
        image_emb, aux = net.encode(x)
        idx = self.candidate_indices(train)
        cand = self.train_poses[idx]  # (M, J, 3)
        with torch.no_grad():
            scores = net.score(image_emb.detach(), net.embed_poses(cand))  # (B, M)
            delta = cfg.delta_scale * mpjpe_matrix(pose, cand).float()  # (B, M)
            true_emb = net.embed_poses(pose)
            which, violation = most_violated(scores, _rowwise_score(image_emb.detach(), true_emb), delta)
        both = net.embed_poses(torch.cat([pose, cand[which]]))  # with gradient: true and most violated
        s_true, s_viol = (_rowwise_score(image_emb, e) for e in both.split(len(pose)))
        hinge = margin_loss(s_viol[:, None], s_true, delta.gather(1, which[:, None]))
        aux_loss = (aux.float() - net.normalizer.normalize(pose).float()).square().sum(1).mean()
        loss = hinge + cfg.aux_weight * aux_loss
        violated = violation > 0
        parts = {"margin_loss": hinge.detach(), "violation_rate": violated.float().mean(),
                 "aux_loss": aux_loss.detach()}  # fmt: skip
        if train:
            self._count(torch.where(violated, idx[which], torch.full_like(which, -1)))
            self._train_parts = parts
            return loss, {}
        with torch.no_grad():
            emb = image_emb.detach()
            parts["mpjpe_mm"] = mpjpe_mm(net.poses_from_embedding(emb, "max"), pose)
            parts["mpjpe_avg_mm"] = mpjpe_mm(net.poses_from_embedding(emb, "avg"), pose)
            parts["mpjpe_reg_mm"] = mpjpe_mm(net.normalizer.denormalize(aux.float()), pose)
        return loss, parts

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        size = len(batch["pose3d"])
        for key, value in self._train_parts.items():
            self.log(f"train/{key}", value, on_step=True, on_epoch=True, batch_size=size)
        return loss
