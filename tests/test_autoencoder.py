"""The pose normaliser and the denoising, contractive pose auto-encoder."""

import pytest
import torch

from structpose.models import AEConfig, PoseAutoencoder, PoseNormalizer
from structpose.models.autoencoder import jacobian_frobenius_sq


def synthetic_poses(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 17, 3) root-relative poses in mm on a 6-dimensional linear manifold."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(17, 3, generator=g) * 300
    basis = torch.randn(6, 51, generator=g) * 60
    poses = base + (torch.randn(n, 6, generator=g) @ basis).reshape(n, 17, 3)
    return poses - poses[:, :1]


# torch.func's jacfwd scripts its decompositions internally; not our deprecation to fix.
uses_jacfwd = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def jacfwd_penalty(ae: PoseAutoencoder, y: torch.Tensor) -> torch.Tensor:
    """Reference ||d encode / dy||_F^2 per sample (B,) from per-sample Jacobians (B, h_L, 51)."""
    jac = torch.func.vmap(torch.func.jacfwd(lambda v: ae.encode(v[None])[0]))(y)
    return jac.square().sum((1, 2))


def train(model, batches, steps: int, lr: float = 1e-3) -> None:
    """Adam on ``model.loss`` over ``batches(step) -> x``."""
    opt = torch.optim.Adam(model.parameters(), lr)
    for step in range(steps):
        loss, _ = model.loss(batches(step), train=True)
        opt.zero_grad()
        loss.backward()
        opt.step()


# ---- normaliser ------------------------------------------------------------------------------------
def test_normalizer_fits_mean_and_pooled_std_and_round_trips():
    poses = synthetic_poses(200)
    norm = PoseNormalizer.from_poses(poses)
    z = norm.normalize(poses)
    assert z.shape == (200, 51)
    torch.testing.assert_close(z.mean(0), torch.zeros(51), atol=1e-4, rtol=0)
    assert z.square().mean().item() == pytest.approx(1.0, rel=1e-4)  # the scale is the pooled std, mm
    assert 100 < norm.scale_mm < 1000
    torch.testing.assert_close(norm.denormalize(z), poses, atol=1e-3, rtol=0)


def test_normalizer_explicit_scale_and_state_dict():
    poses = synthetic_poses(50)
    norm = PoseNormalizer.from_poses(poses.numpy(), scale_mm=250.0)
    assert norm.scale_mm == 250.0
    expected = (poses[:1] - poses.mean(0)).reshape(1, 51) / 250.0
    torch.testing.assert_close(norm.normalize(poses[:1]), expected, atol=1e-5, rtol=0)
    restored = PoseNormalizer()
    restored.load_state_dict(norm.state_dict())
    torch.testing.assert_close(restored.normalize(poses), norm.normalize(poses))


# ---- exact contractive penalty ----------------------------------------------------------------------
@pytest.mark.parametrize("hidden", [(64,), (48, 32), (40, 30, 20)])
@pytest.mark.parametrize("tied", [True, False])
@uses_jacfwd
def test_closed_form_penalty_equals_jacfwd_value_and_gradient(hidden, tied):
    torch.manual_seed(0)
    ae = PoseAutoencoder(AEConfig(hidden, (40.0,) * len(hidden), tied), scale_mm=200.0).double()
    y = torch.randn(16, 51, dtype=torch.float64)
    ours, ref = ae.jacobian_frobenius_sq(y), jacfwd_penalty(ae, y)
    assert ours.shape == (16,) and (ref > 0).all()
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    weights = [layer.enc.weight for layer in ae.layers]
    grads = torch.autograd.grad(ours.sum(), weights)
    ref_grads = torch.autograd.grad(ref.sum(), weights)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_one_layer_closed_form_is_active_row_norms():
    w = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, 1.0]])
    masks = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    torch.testing.assert_close(jacobian_frobenius_sq([w], [masks]), torch.tensor([5.0 + 1.0, 9.0]))


@uses_jacfwd
def test_loss_penalty_is_taken_at_the_noisy_input():
    torch.manual_seed(0)
    ae = PoseAutoencoder(AEConfig((32,), (40.0,)), scale_mm=100.0).double()
    y = torch.randn(8, 51, dtype=torch.float64)
    torch.manual_seed(1)
    _, parts = ae.loss(y, train=True)
    torch.manual_seed(1)
    noisy = y + 0.4 * torch.randn_like(y)  # 40 mm / 100 mm per unit
    torch.testing.assert_close(parts["contractive"], jacfwd_penalty(ae, noisy).mean())
    torch.testing.assert_close(parts["recon"], (ae(noisy) - y).square().sum(1).mean())


def test_config_validation():
    with pytest.raises(ValueError):
        AEConfig(hidden=(300, 300), noise_mm=(40.0,))
    with pytest.raises(ValueError):
        AEConfig(lam=-1.0)


# ---- noise -------------------------------------------------------------------------------------------
def test_noise_is_in_normalised_units_and_only_in_training():
    torch.manual_seed(0)
    ae = PoseAutoencoder(AEConfig((300, 300), (40.0, 20.0)), scale_mm=200.0)
    assert [layer.noise_std for layer in ae.layers] == pytest.approx([0.2, 0.1])
    zeros = torch.zeros(4000, 51)
    assert ae.layers[0].corrupt(zeros, train=True).std().item() == pytest.approx(0.2, rel=0.02)
    assert torch.equal(ae.layers[0].corrupt(zeros, train=False), zeros)

    y = torch.randn(32, 51)
    ae.train()
    assert not torch.equal(ae.loss(y)[0], ae.loss(y)[0])  # default: noisy in train mode
    assert torch.equal(ae(y), ae(y))  # forward never adds noise
    clean = ae.loss(y, train=False)
    assert torch.equal(clean[0], ae.loss(y, train=False)[0])
    torch.testing.assert_close(clean[1]["recon"], (ae(y) - y).square().sum(1).mean())
    ae.eval()
    assert torch.equal(ae.loss(y)[0], clean[0])


# ---- learning ----------------------------------------------------------------------------------------
def test_paper_loss_falls_clearly_on_a_pose_manifold():
    torch.manual_seed(0)
    poses = synthetic_poses(512)
    norm = PoseNormalizer.from_poses(poses)
    y = norm.normalize(poses)
    ae = PoseAutoencoder(AEConfig((256,), (40.0,), lam=0.1), norm.scale_mm)
    before = ae.loss(y, train=False)
    train(ae, lambda step: y[torch.randint(0, 512, (64,))], steps=200)
    after = ae.loss(y, train=False)
    assert after[0] < 0.25 * before[0]
    assert after[1]["recon"] < 0.05 * before[1]["recon"]
    assert after[1]["contractive"] < before[1]["contractive"]


def test_autoencoder_overfits_one_batch():
    torch.manual_seed(0)
    y = torch.randn(32, 51)
    ae = PoseAutoencoder(AEConfig((256,), (0.0,), lam=0.0), scale_mm=1.0)
    before = ae.loss(y, train=False)[0]
    train(ae, lambda step: y, steps=300)
    assert ae.loss(y, train=False)[0] < 1e-3 * before


def test_greedy_pretraining_then_fine_tuning():
    torch.manual_seed(0)
    poses = synthetic_poses(256)
    norm = PoseNormalizer.from_poses(poses)
    y = norm.normalize(poses)
    ae = PoseAutoencoder(AEConfig((64, 32), (40.0, 20.0)), norm.scale_mm)
    for i in range(ae.num_layers):
        layer_ae = ae.layer_autoencoder(i)
        assert [id(p) for p in layer_ae.parameters()] == [id(p) for p in ae.pretrain_parameters(i)]
        codes = ae.codes(y, i).detach()
        assert codes.shape == (256, (51, 64)[i])
        frozen = [p.detach().clone() for p in ae.layers[:i].parameters()]
        before = layer_ae.loss(codes, train=False)[0]
        train(layer_ae, lambda step, codes=codes: codes, steps=150)
        assert layer_ae.loss(codes, train=False)[0] < 0.5 * before
        for p, q in zip(ae.layers[:i].parameters(), frozen, strict=True):
            assert torch.equal(p, q)  # pre-training layer i leaves the layers below alone
    before = ae.loss(y, train=False)[0]
    train(ae, lambda step: y, steps=100)
    assert ae.loss(y, train=False)[0] < before
    assert ae.encode(y).shape == (256, 32)


@pytest.mark.parametrize("tied", [True, False])
def test_decoder_module_is_the_mirror_and_holds_just_the_decoder_parameters(tied):
    torch.manual_seed(0)
    ae = PoseAutoencoder(AEConfig((40, 30), (40.0, 20.0), tied=tied), scale_mm=200.0)
    with torch.no_grad():  # make an untied decoder differ from the encoder
        for p in ae.parameters():
            p.add_(0.01 * torch.randn_like(p))
    decoder = ae.decoder()
    h = torch.rand(5, 30)
    torch.testing.assert_close(decoder(h), ae.decode(h))
    first, second = ae.layers
    v1, v2 = (first.enc.weight, second.enc.weight) if tied else (first.dec_weight, second.dec_weight)
    h1 = torch.relu(h @ v2 + second.dec_bias)  # codes are reconstructed through a ReLU
    torch.testing.assert_close(ae.decode(h), h1 @ v1 + first.dec_bias)  # the pose linearly
    assert {id(p) for p in decoder.parameters()} == {id(p) for p in (v1, v2, first.dec_bias, second.dec_bias)}
    assert len(list(ae.parameters())) == (6 if tied else 8)
