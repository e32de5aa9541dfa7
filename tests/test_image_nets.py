"""The image networks: ResNets with torchvision's layout, the spectral baseline, the DCGAN generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facevox.errors import FacevoxError
from facevox.image.spectrum import azimuthal_spectrum
from facevox.nets.resnet import load_torchvision_weights
from facevox.registry import create_model


@pytest.mark.parametrize(("name", "params", "keys"), [("resnet18", 11_689_512, 122), ("resnet50", 25_557_032, 320)])
def test_resnets_match_torchvision_sizes_and_names(name, params, keys):
    # torchvision's resnet18/resnet50 with 1000 classes: these parameter and state-dict key counts
    model = create_model(name, num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == params
    state = model.state_dict()
    assert len(state) == keys
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer4.1.bn2.weight", "fc.bias"} <= set(state)


def test_relus_are_separate_and_not_inplace():
    model = create_model("resnet50")
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 1 + 3 * 16 and not any(r.inplace for r in relus)
    assert len({id(r) for r in relus}) == len(relus)


def test_resnet_takes_any_size_and_normalises_inside():
    model = create_model("resnet18", width=8).eval()
    for size in (32, 64, 97):
        assert model(torch.rand(2, 3, size, size)).shape == (2, 1)
    assert model.features(torch.rand(1, 3, 64, 64)).shape == (1, 64, 2, 2)


def test_torchvision_weights_load_without_the_classifier(tmp_path):
    source = create_model("resnet18", num_classes=1000)
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, tmp_path / "tv.pth")  # DDP-style prefix
    target = create_model("resnet18", num_classes=1)
    skipped = load_torchvision_weights(target, tmp_path / "tv.pth")
    assert skipped == ["fc.weight", "fc.bias"]
    torch.testing.assert_close(target.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    with pytest.raises(FacevoxError, match="do not fit"):
        load_torchvision_weights(create_model("resnet50"), tmp_path / "tv.pth")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(FacevoxError, match="bad.pth"):
        load_torchvision_weights(target, tmp_path / "bad.pth")


def test_azimuthal_spectrum_of_known_images():
    flat = torch.full((1, 1, 32, 32), 0.5)
    prof = azimuthal_spectrum(flat)
    assert prof.shape == (1, 16) and prof[0, 0] == 1.0 and torch.all(prof[0, 1:] == 0)  # only DC
    # a vertical cosine of 8 cycles puts its energy in ring 8
    x = torch.arange(32).float()
    wave = (0.5 + 0.5 * torch.cos(2 * np.pi * 8 * x / 32)).view(1, 1, 1, 32).expand(1, 1, 32, 32)
    prof = azimuthal_spectrum(wave)[0]
    others = torch.cat([prof[1:8], prof[9:]])
    assert prof[8] > 0.01 and prof[8] > 100 * others.max()


def test_dcgan_generator_layout():
    g = create_model("dcgan_generator")
    assert g(torch.randn(2, 100)).shape == (2, 3, 64, 64)
    names = set(g.state_dict())
    assert {"main.0.weight", "main.1.running_var", "main.12.weight"} <= names and "main.13.weight" not in names


def test_shipped_dcgan_face_generator_loads():
    pytest.importorskip("gan_face_generate")  # installed by `make setup` (--no-deps)
    from facevox.nets.dcgan import load_gan_face_generator

    g = load_gan_face_generator()
    with torch.no_grad():
        img = g(torch.randn(4, 100, generator=torch.Generator().manual_seed(0)))
    assert img.shape == (4, 3, 64, 64) and img.min() >= -1 and img.max() <= 1
    assert img.std() > 0.2  # a trained generator draws faces, not a flat field


def test_bad_generator_weights_name_the_file(tmp_path):
    from facevox.nets.dcgan import load_gan_face_generator

    (tmp_path / "w.tar").write_bytes(b"junk")
    with pytest.raises(FacevoxError, match="w.tar"):
        load_gan_face_generator(tmp_path / "w.tar")
