"""The overcomplete denoising, contractive pose auto-encoder of Tekin et al. (BMVC 2016), Section 3.1.

Inputs are normalised poses ``y`` (B, 51) (see :mod:`structpose.models.normalize`). Layer ``i`` encodes
``h_i = relu(W_i h~_{i-1} + b_i)`` with ``h_0 = y``, where ``h~`` is its input plus Gaussian noise (in
training only). Decoding is the mirror: layer ``i`` decodes with ``W_i^T`` (tied weights) or its own
matrix (untied) and its own bias; the last step (back to the pose) is LINEAR, the intermediate ones
(back to a code ``h_i``, which is non-negative) use a ReLU. The loss, per sample and averaged over the
batch, is::

    ||y - f(y~)||^2 + lam * ||d h_L / d y~||_F^2

Units. The Jacobian is taken w.r.t. the NORMALISED input, so ``lam`` is unit-free for a given
normaliser (written for poses in mm, the same objective has ``lam * scale**4``, see
:mod:`structpose.models.normalize`). The noise stds ``AEConfig.noise_mm`` are
given in mm and divided by the normaliser's ``scale`` (mm per unit); for layers beyond the first the
noise is added to the code ``h_{i-1}``, and the same conversion is used, i.e. the codes are treated as
living in normalised-pose units (the paper's 40 mm then 20 mm for its 300-300 network).

Exact contractive penalty. With ``a_l`` the pre-activations at the noisy inputs and ``D_l = diag(1[a_l > 0])``
(additive noise does not depend on ``y~``), the encoder Jacobian is ``J = D_L W_L ... D_1 W_1``:

* one layer: ``||J||_F^2 = sum_k 1[a_k > 0] ||W_k||^2``, a (B, h) @ (h,) product;
* deeper: ``J_1 = D_1 W_1`` (B, h_1, 51), ``J_l = D_l (W_l J_{l-1})`` (B, h_l, 51), i.e. forward-mode
  differentiation along all 51 input directions at once; ``||J||_F^2 = sum J_L^2``. Memory B*h*51 floats;
  computed transposed, ``J_l^T = J_{l-1}^T W_l^T D_l``, so that each step is one (B*51, h) @ (h, h') GEMM.

The masks are piecewise constant, so the gradient of this expression w.r.t. the weights is the exact
gradient of the penalty (almost everywhere).

Greedy layer-wise pre-training, then fine-tuning::

    ae = PoseAutoencoder(AEConfig(hidden=(300, 300), noise_mm=(40.0, 20.0)), scale_mm=normalizer.scale_mm)
    for i in range(ae.num_layers):
        layer_ae = ae.layer_autoencoder(i)            # a one-layer AE sharing layer i's parameters
        opt = torch.optim.Adam(layer_ae.parameters())  # == ae.pretrain_parameters(i)
        ...  loss, parts = layer_ae.loss(ae.codes(y, i).detach())   # clean codes in, noise added inside
    ...  loss, parts = ae.loss(y)                     # fine-tune the whole AE
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from structpose.errors import InputError

#: Named, detached terms of a loss, for logging.
LossParts = dict[str, torch.Tensor]


@dataclass
class AEConfig:
    """Auto-encoder hyper-parameters: the paper's nets are ``hidden=(2000,)`` with ``noise_mm=(40.0,)``
    and ``hidden=(300, 300)`` with ``noise_mm=(40.0, 20.0)``, tied weights, ``lam=0.1``.

    ``noise_mm[i]``: std of the Gaussian noise added to layer i's input, in mm (converted with the pose
    scale, see the module docstring), in layer i's greedy pre-training. ``noise``: where the joint
    fine-tuning of a deep AE adds noise: ``input`` (the pose only, as the paper) or ``every_layer`` (each
    layer's input, with its ``noise_mm``); one layer: the same. ``lam``: weight of the contractive penalty
    (normalised units).
    """

    hidden: tuple[int, ...] = (2000,)
    noise_mm: tuple[float, ...] = (40.0,)
    tied: bool = True
    lam: float = 0.1
    noise: Literal["input", "every_layer"] = "input"

    def __post_init__(self) -> None:
        if not self.hidden or min(self.hidden) < 1 or len(self.noise_mm) != len(self.hidden):
            raise ValueError(f"need at least one hidden layer and one noise std per layer: {self}")
        if min(self.noise_mm) < 0 or self.lam < 0:
            raise ValueError(f"noise stds and lam must be >= 0: {self}")
        if self.noise not in ("input", "every_layer"):
            raise ValueError(f"noise must be 'input' or 'every_layer', got {self.noise!r}")


class DenoisingLayer(nn.Module):
    """One level of the AE: encoder ``relu(W x + b)``, (B, in_dim) -> (B, out_dim), and its decoder back.

    The decoder is ``x = V^T h + c`` with ``V = W`` (tied) or its own ``V`` (untied; starts as a copy of
    ``W``), then a ReLU unless ``linear_output`` (the layer that reconstructs the pose ends linear, the
    layers that reconstruct codes end with a ReLU). ``noise_std``: std of the input noise, in x's units.
    """

    def __init__(self, in_dim: int, out_dim: int, noise_std: float, tied: bool, linear_output: bool):
        super().__init__()
        self.enc = nn.Linear(in_dim, out_dim)
        self.dec_weight = None if tied else nn.Parameter(self.enc.weight.detach().clone())
        self.dec_bias = nn.Parameter(torch.zeros(in_dim))
        self.noise_std = noise_std
        self.linear_output = linear_output

    @property
    def decoder_weight(self) -> nn.Parameter:
        """``V`` (out_dim, in_dim): the encoder's ``W`` when tied."""
        return self.enc.weight if self.dec_weight is None else self.dec_weight

    def corrupt(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """``x`` plus N(0, noise_std^2) noise when ``train``, else ``x`` itself."""
        return x + self.noise_std * torch.randn_like(x) if train and self.noise_std > 0 else x

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """(B, out_dim) -> (B, in_dim)."""
        return _decode_step(h, self.decoder_weight, self.dec_bias, self.linear_output)


def _decode_step(h: torch.Tensor, v: torch.Tensor, c: torch.Tensor, linear: bool) -> torch.Tensor:
    """A decoder layer: h (B, out) -> h V + c (B, in) for V (out, in), then a ReLU unless ``linear``."""
    x = F.linear(h, v.t(), c)
    return x if linear else F.relu(x)


def _check_code(h: torch.Tensor, latent_dim: int) -> None:
    if not (h.ndim == 2 and h.shape[1] == latent_dim):
        raise InputError(f"expected codes (B, {latent_dim}), got {tuple(h.shape)}")


def jacobian_frobenius_sq(weights: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Exact ``||D_L W_L ... D_1 W_1||_F^2`` per sample.

    ``weights``: ``W_l`` (h_l, h_{l-1}); ``masks``: the diagonals of ``D_l``, (B, h_l). Returns (B,).
    """
    if not len(weights) == len(masks) >= 1:
        raise InputError("expected one mask per weight matrix, and at least one of each")
    if len(weights) == 1:
        return masks[0] @ weights[0].square().sum(1)
    jac_t = weights[0].t() * masks[0][:, None, :]  # J_1^T: (B, d, h_1)
    for weight, mask in zip(weights[1:], masks[1:], strict=True):
        jac_t = (jac_t @ weight.t()) * mask[:, None, :]  # J_l^T = J_{l-1}^T W_l^T D_l: (B, d, h_l), one GEMM
    return jac_t.square().sum((1, 2))


class DenoisingAutoencoder(nn.Module):
    """A stack of :class:`DenoisingLayer` trained with the denoising + contractive loss (module docstring)."""

    def __init__(self, layers: Sequence[DenoisingLayer], lam: float, noise_every_layer: bool = True):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.lam = lam
        self.noise_every_layer = noise_every_layer

    @property
    def in_dim(self) -> int:
        return self.layers[0].enc.in_features

    @property
    def latent_dim(self) -> int:
        return self.layers[-1].enc.out_features

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def _encode(
        self, x: torch.Tensor, train: bool, depth: int | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, in_dim) -> code h_depth (default the latent, (B, latent_dim)) and the ReLU masks 1[a_l > 0]
        (B, h_l) of the layers used; noise is added when ``train``: to each layer's input, or to the first
        layer's only when not ``noise_every_layer``."""
        if not (x.ndim == 2 and x.shape[1] == self.in_dim):
            raise InputError(f"expected (B, {self.in_dim}), got {tuple(x.shape)}")
        masks = []
        for i, layer in enumerate(self.layers[:depth]):
            pre = layer.enc(layer.corrupt(x, train and (i == 0 or self.noise_every_layer)))
            masks.append((pre > 0).to(pre.dtype))
            x = F.relu(pre)
        return x, masks

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Clean code: (B, in_dim) -> (B, latent_dim). Never noisy."""
        return self._encode(x, train=False)[0]

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, in_dim), through the layers in reverse."""
        _check_code(h, self.latent_dim)
        for layer in reversed(self.layers):
            h = layer.decode(h)
        return h

    def codes(self, x: torch.Tensor, depth: int) -> torch.Tensor:
        """Clean codes ``h_depth`` (B, hidden[depth - 1]) of inputs (B, in_dim): the input of layer ``depth``
        (``depth == 0``: ``x`` itself)."""
        if not 0 <= depth <= self.num_layers:
            raise InputError(f"depth must lie in [0, {self.num_layers}], got {depth}")
        return self._encode(x, train=False, depth=depth)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clean reconstruction (B, in_dim) -> (B, in_dim)."""
        return self.decode(self.encode(x))

    def jacobian_frobenius_sq(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``||d encode / d x||_F^2`` at clean inputs (B, in_dim) -> (B,)."""
        masks = self._encode(x, train=False)[1]
        return jacobian_frobenius_sq([layer.enc.weight for layer in self.layers], masks)

    def loss(self, x_clean: torch.Tensor, train: bool | None = None) -> tuple[torch.Tensor, LossParts]:
        """Denoising + contractive loss on clean inputs (B, in_dim); noise is added when ``train``
        (default: ``self.training``). Returns the scalar total and detached parts ``recon`` (squared error
        per sample, batch mean) and ``contractive`` (``||J||_F^2`` at the noisy input, batch mean; 0 and not
        computed when ``lam == 0``).
        """
        train = self.training if train is None else train
        code, masks = self._encode(x_clean, train)
        recon = (self.decode(code) - x_clean).square().sum(1).mean()
        if self.lam > 0:
            penalty = jacobian_frobenius_sq([layer.enc.weight for layer in self.layers], masks).mean()
        else:
            penalty = recon.new_zeros(())
        total = recon + self.lam * penalty
        return total, {"recon": recon.detach(), "contractive": penalty.detach()}


class AEDecoder(nn.Module):
    """The decoder of an AE as a module: (B, latent_dim) -> (B, in_dim), the same as ``autoencoder.decode``.

    It holds the AE's decoder parameters themselves (shared, not copied) and only those: ``V_l`` (the
    encoder's ``W_l`` when tied) and ``c_l``, so that fine-tuning it trains the AE's decoder and no
    parameter goes unused (as DDP requires).
    """

    def __init__(self, autoencoder: DenoisingAutoencoder):
        super().__init__()
        layers = autoencoder.layers
        self.weights = nn.ParameterList([layer.decoder_weight for layer in layers])
        self.biases = nn.ParameterList([layer.dec_bias for layer in layers])
        self.linear_output = [layer.linear_output for layer in layers]
        self.latent_dim = autoencoder.latent_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        _check_code(h, self.latent_dim)
        steps = list(zip(self.weights, self.biases, self.linear_output, strict=True))
        for weight, bias, linear in reversed(steps):
            h = _decode_step(h, weight, bias, linear)
        return h


class PoseAutoencoder(DenoisingAutoencoder):
    """The pose AE: normalised poses (B, in_dim=51) -> latent ``h_L`` (B, hidden[-1]) -> poses (B, 51).

    ``scale_mm``: the pose normaliser's scale (mm per normalised unit), used to turn ``cfg.noise_mm`` into
    normalised units.
    """

    def __init__(self, cfg: AEConfig, scale_mm: float, in_dim: int = 51):
        if not scale_mm > 0:  # also refuses NaN
            raise InputError(f"scale_mm must be a positive number of mm, got {scale_mm}")
        dims = (in_dim, *cfg.hidden)
        layers = [
            DenoisingLayer(dims[i], dims[i + 1], cfg.noise_mm[i] / scale_mm, cfg.tied, linear_output=i == 0)
            for i in range(len(cfg.hidden))
        ]
        super().__init__(layers, cfg.lam, noise_every_layer=cfg.noise == "every_layer")
        self.cfg = cfg

    def layer_autoencoder(self, i: int) -> DenoisingAutoencoder:
        """Layer ``i`` as a one-layer AE sharing its parameters, to pre-train greedily on ``codes(y, i)``."""
        return DenoisingAutoencoder([self.layers[i]], self.lam)

    def pretrain_parameters(self, i: int) -> list[nn.Parameter]:
        """The parameters that pre-training layer ``i`` updates."""
        return list(self.layers[i].parameters())

    def decoder(self) -> AEDecoder:
        """The decoder as a module sharing this AE's decoder parameters, to append to the CNN."""
        return AEDecoder(self)
