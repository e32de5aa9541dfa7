"""The DCGAN face generator needs only the weights file of gan-face-generate, never its code."""

from __future__ import annotations

import sys

import pytest
import torch

from facevox.errors import FacevoxError
from facevox.nets.dcgan import DCGANGenerator, gan_face_weights_path, load_gan_face_generator
from facevox.tasks.invert.generators import load_generator


def _fake_package(root, monkeypatch) -> DCGANGenerator:
    """A gan_face_generate whose code cannot be imported (as without torchvision) but whose weights can be read."""
    pkg = root / "gan_face_generate"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('No module named torchvision')\n")
    net = DCGANGenerator(nz=100, ngf=4)
    torch.manual_seed(0)
    for p in net.parameters():
        p.data.normal_()
    torch.save({"netG_state_dict": net.state_dict()}, pkg / "weights.tar")
    monkeypatch.delitem(sys.modules, "gan_face_generate", raising=False)
    monkeypatch.syspath_prepend(str(root))
    return net.eval()


def test_weights_are_found_without_importing_the_package(tmp_path, monkeypatch):
    ref = _fake_package(tmp_path, monkeypatch)
    assert gan_face_weights_path() == tmp_path / "gan_face_generate" / "weights.tar"
    monkeypatch.setattr("facevox.registry.create_model", lambda name: DCGANGenerator(nz=100, ngf=4))
    g = load_gan_face_generator()
    assert "gan_face_generate" not in sys.modules  # its __init__ would have raised
    z = torch.randn(2, 100)
    with torch.no_grad():
        torch.testing.assert_close(g(z), ref(z))


def test_missing_package_says_what_a_pip_user_runs(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FacevoxError, match="pip install --no-deps gan-face-generate") as err:
        load_generator("dcgan-face")
    assert "--weights" in str(err.value) and "make setup" not in str(err.value)


def test_weights_file_given_directly(tmp_path, monkeypatch):
    ref = _fake_package(tmp_path, monkeypatch)
    monkeypatch.setattr("facevox.registry.create_model", lambda name: DCGANGenerator(nz=100, ngf=4))
    g = load_generator("dcgan-face", weights=tmp_path / "gan_face_generate" / "weights.tar")
    assert g.nz == 100 and g.image_size == (64, 64)
    z = torch.randn(2, 100)
    with torch.no_grad():
        torch.testing.assert_close(g(z), (ref(z) + 1) / 2)
