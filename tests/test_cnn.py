"""The image CNN, its preprocessing, and the networks built on it (structured net, direct baseline)."""

import pytest
import torch

from structpose.models import (
    AEConfig,
    CNNConfig,
    DirectCNN,
    PaperCNN,
    PoseAutoencoder,
    PoseNormalizer,
    StructuredNet,
    default_crop,
    preprocess,
)

SMALL = CNNConfig(in_size=64, crop=56, fc=(256, 256, 256))


def test_paper_architecture_shapes():
    cfg = CNNConfig()
    assert (cfg.in_size, cfg.crop, cfg.dropout) == (128, 112, 0.5)
    assert (cfg.channels, cfg.kernels) == ((32, 32, 64), (9, 5, 5))
    assert cfg.feature_size == 10  # 112 -9+1 -> 104 /2 -> 52 -5+1 -> 48 /2 -> 24 -5+1 -> 20 /2 -> 10
    torch.manual_seed(0)
    net = PaperCNN(cfg, out_dim=2000).eval()
    assert net(torch.randn(2, 3, 112, 112)).shape == (2, 2000)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(32, (9, 9)), (32, (5, 5)), (64, (5, 5))]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [lin.out_features for lin in linears] == [1024, 2048, 2048, 2000]
    assert sum(isinstance(m, torch.nn.Dropout) for m in net.modules()) == 3
    with pytest.raises(ValueError, match="expected"):
        net(torch.randn(2, 3, 128, 128))  # crops, not full images
    with pytest.raises(ValueError):
        CNNConfig(in_size=64)  # the 112 px crop does not fit: 64 px images take crop=default_crop(64)


def test_channels_last_gives_the_same_output():
    torch.manual_seed(0)
    net = PaperCNN(SMALL, out_dim=51).eval()
    x = torch.randn(4, 3, 56, 56)
    expected = net(x)
    torch.testing.assert_close(net(x.contiguous(memory_format=torch.channels_last)), expected)
    net = net.to(memory_format=torch.channels_last)
    torch.testing.assert_close(net(x.contiguous(memory_format=torch.channels_last)), expected)


def test_cnn_overfits_a_batch_of_random_images():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8)
    targets = torch.randn(8, 51)
    x = preprocess(images, train=False)
    net = PaperCNN(CNNConfig(in_size=64, crop=56, fc=(256, 256, 256), dropout=0.0), out_dim=51)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    before = (net(x) - targets).square().mean()
    for _ in range(80):
        loss = (net(x) - targets).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (net(x) - targets).square().mean() < 0.02 * before


def test_preprocess_crops_and_normalises():
    assert default_crop(128) == 112 and default_crop(64) == 56
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 64, 64), dtype=torch.uint8, generator=g)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    centre = preprocess(images, train=False, mean=mean, std=std)
    assert centre.shape == (6, 3, 56, 56) and centre.dtype == torch.float32
    pixels = centre * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    torch.testing.assert_close(pixels * 255, images[:, :, 4:60, 4:60].float(), atol=1e-3, rtol=0)  # float32 trip

    crops = preprocess(images, train=True, generator=g, mean=(0.0,) * 3, std=(1 / 255,) * 3)
    offsets = set()
    for img, crop in zip(images.float(), crops, strict=True):  # each crop is a window of its own image
        windows = {(i, j): img[:, i : i + 56, j : j + 56] for i in range(9) for j in range(9)}
        hits = [ij for ij, window in windows.items() if torch.equal(window, crop.round())]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 1  # independent offsets per image
    assert preprocess(images, train=True, crop=40).shape == (6, 3, 40, 40)


def test_structured_net_is_the_denormalised_decoder_of_the_cnn():
    torch.manual_seed(0)
    poses = torch.randn(100, 17, 3) * 200
    norm = PoseNormalizer.from_poses(poses)
    ae = PoseAutoencoder(AEConfig((40,), (40.0,)), norm.scale_mm)
    cnn = PaperCNN(SMALL, out_dim=40)
    net = StructuredNet(cnn, ae.decoder(), norm).eval()
    x = torch.randn(3, 3, 56, 56)
    pose = net(x)
    assert pose.shape == (3, 17, 3)
    torch.testing.assert_close(pose, norm.denormalize(ae.decode(cnn(x))))
    shared = {id(p) for p in ae.parameters()} & {id(p) for p in net.parameters()}
    assert shared == {id(ae.layers[0].enc.weight), id(ae.layers[0].dec_bias)}  # the decoder's, trained too


def test_direct_cnn_regresses_the_normalised_pose():
    torch.manual_seed(0)
    norm = PoseNormalizer.from_poses(torch.randn(100, 17, 3) * 200)
    cnn = PaperCNN(SMALL, out_dim=51)
    net = DirectCNN(cnn, norm).eval()
    x = torch.randn(2, 3, 56, 56)
    torch.testing.assert_close(net(x), norm.denormalize(cnn(x)))
    with pytest.raises(ValueError, match="normalised pose"):
        DirectCNN(PaperCNN(SMALL, out_dim=40), norm)


def test_active_units_tell_a_live_network_from_a_dead_one():
    from structpose.models.cnn import active_units

    torch.manual_seed(0)
    cfg = CNNConfig(in_size=32, crop=28, channels=(4, 4, 8), kernels=(5, 3, 3), fc=(16, 16), dropout=0.0)
    net = PaperCNN(cfg, 5).eval()
    x = torch.randn(32, 3, 28, 28)
    live = active_units(net, x)
    assert len(live) == 1 + len(cfg.fc) and all(0.2 < s <= 1.0 for s in live)
    # a trunk whose last convolution never fires: no feature reaches the head, whose units fire for all
    # crops alike (on their biases) or for none; with negative biases everywhere, none, and the output is a
    # constant (the last bias), as in a direct CNN stuck at the mean pose
    with torch.no_grad():
        net.features[6].bias.fill_(-1e3)
        for layer in net.head:
            if isinstance(layer, torch.nn.Linear) and layer is not net.head[-1]:
                layer.bias.fill_(-1.0)
        dead = active_units(net, x)
        assert dead == [0.0, 0.0, 0.0]
        out = net(x)
    torch.testing.assert_close(out, net.head[-1].bias.expand_as(out))
