"""An in-tree copy of Resemblyzer's ``VoiceEncoder``, so its pretrained weights can be loaded and fine-tuned.

Resemblyzer (Resemble AI, https://github.com/resemble-ai/Resemblyzer) ships the speaker encoder of
Jia et al., "Transfer learning from speaker verification to multispeaker text-to-speech synthesis"
(NeurIPS 2018), trained with the GE2E loss of Wan et al., "Generalized end-to-end loss for speaker
verification" (ICASSP 2018): a 3-layer LSTM (hidden 256) over 40 mel channels, whose last layer's
final hidden state goes through Linear(256, 256) and a ReLU and is L2-normalised. Here the input is
``(B, 40, T)``, like every other speaker net in :mod:`facevox.nets`, and is transposed inside to the
``(B, T, 40)`` the LSTM reads; the output is ``(B, 256)``. Parameter names are Resemblyzer's, so
``model.load_state_dict(torch.load(".../resemblyzer/pretrained.pt")["model_state"])`` works as it is
(:func:`load_resemblyzer_weights` does that with clear errors).

The features it expects (``resemblyzer/audio.py`` and ``hparams.py``, version 0.1.4), kept in
:data:`RESEMBLYZER_MEL` and computed by :func:`resemblyzer_mel`:

- 16 kHz mono float waveforms in [-1, 1], first *preprocessed* (:data:`RESEMBLYZER_PREPROCESS`): the
  volume raised (never lowered) to -30 dBFS RMS, then silences longer than about 0.2 s cut out with
  webrtcvad (mode 3, 30 ms windows, a moving average over 8 windows, dilation by 6 + 1 windows);
- ``librosa.feature.melspectrogram`` with its defaults otherwise: 25 ms Hann windows (n_fft = win =
  400 samples) every 10 ms (hop 160), a centred STFT (zero padding of n_fft // 2 at both ends with
  librosa >= 0.10, reflect padding with the older librosa the weights were trained with), the power
  spectrum (|X|^2), 40 Slaney-scale, Slaney-normalised mel filters over 0-8000 Hz;
- **no log and no mean normalisation**: the network reads the mel power values as they are;
- an utterance is embedded as 160-frame (1.6 s) partial windows, 1.3 per second, the last kept if it
  is at least 75 % covered by audio (:data:`RESEMBLYZER_PARTIALS`); the partial embeddings are averaged
  and the mean is L2-normalised again.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from facevox.audio.features import mel_filterbank
from facevox.errors import FacevoxError
from facevox.precision import needs_fp32_recurrent
from facevox.registry import register_model

# Resemblyzer's mel front end (hparams.py + librosa.feature.melspectrogram defaults)
RESEMBLYZER_MEL = dict(
    sample_rate=16000,
    n_fft=400,  # 25 ms at 16 kHz
    win_length=400,
    hop_length=160,  # 10 ms at 16 kHz
    window="hann",  # periodic, librosa's default
    center=True,
    pad_mode="constant",  # librosa >= 0.10; the weights were trained with librosa's older "reflect"
    power=2.0,
    n_mels=40,
    f_min=0.0,
    f_max=8000.0,
    mel_scale="slaney",  # librosa's htk=False
    mel_norm="slaney",
    log=False,
    cmn=False,
)
# Resemblyzer's preprocess_wav (audio.py)
RESEMBLYZER_PREPROCESS = dict(
    target_dbfs=-30.0,
    increase_only=True,
    vad_mode=3,
    vad_window_ms=30,
    vad_moving_average_width=8,
    vad_max_silence_length=6,
)
# Resemblyzer's VoiceEncoder.embed_utterance defaults
RESEMBLYZER_PARTIALS = dict(frames=160, rate=1.3, min_coverage=0.75)

# GE2E's learned similarity scale and offset start at (10, -5) (Wan et al. 2018, section 2.1)
GE2E_INIT_WEIGHT, GE2E_INIT_BIAS = 10.0, -5.0


class VoiceEncoder(nn.Module):
    """Resemblyzer's LSTM speaker encoder: mel frames (B, in_dim, T) -> L2-normalised embeddings (B, embed_dim).

    ``similarity_weight`` and ``similarity_bias`` are GE2E's scale and offset; the forward pass does
    not use them, but Resemblyzer's checkpoint has them, so they are kept as buffers (saved and
    loaded, never trained) for its state dict to load strictly.
    """

    def __init__(self, in_dim: int = 40, hidden_size: int = 256, num_layers: int = 3, embed_dim: int = 256) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden_size, num_layers, batch_first=True)
        self.linear = nn.Linear(hidden_size, embed_dim)
        self.relu = nn.ReLU()
        self.register_buffer("similarity_weight", torch.tensor([GE2E_INIT_WEIGHT]))
        self.register_buffer("similarity_bias", torch.tensor([GE2E_INIT_BIAS]))
        self.in_dim, self.embed_dim = in_dim, embed_dim
        self.example_input_shape = (in_dim, RESEMBLYZER_PARTIALS["frames"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.in_dim:
            raise ValueError(f"expected mel frames (B, {self.in_dim}, T), got shape {tuple(x.shape)}")
        if needs_fp32_recurrent(x):  # no bf16 LSTM kernel on CPUs without native bf16
            with torch.autocast(device_type="cpu", enabled=False):
                _, (hidden, _) = self.lstm(x.float().transpose(1, 2))
        else:
            _, (hidden, _) = self.lstm(x.transpose(1, 2))
        embeds = self.relu(self.linear(hidden[-1]))
        # Resemblyzer divides by the norm; normalize() does the same but gives 0, not NaN, for an all-zero vector
        # in float32 at least: a bf16 norm is off in the third digit
        return nn.functional.normalize(embeds.to(torch.promote_types(embeds.dtype, torch.float32)), dim=1)


def resemblyzer_mel(wave: torch.Tensor) -> torch.Tensor:
    """Resemblyzer's mel power spectrogram of (B, samples) or (samples,) 16 kHz waves -> (B, 40, frames).

    Equals ``resemblyzer.audio.wav_to_mel_spectrogram(wave).T`` (librosa >= 0.10) with
    ``frames = 1 + samples // 160``; the waves should already be preprocessed (see the module doc).
    Always float32, also under autocast.
    """
    cfg = RESEMBLYZER_MEL
    wave = wave.unsqueeze(0) if wave.dim() == 1 else wave
    with torch.autocast(device_type=wave.device.type, enabled=False):
        window = torch.hann_window(cfg["win_length"], periodic=True, device=wave.device)
        spec = torch.stft(
            wave.float(),
            n_fft=cfg["n_fft"],
            hop_length=cfg["hop_length"],
            win_length=cfg["win_length"],
            window=window,
            center=cfg["center"],
            pad_mode=cfg["pad_mode"],
            return_complex=True,
        )
        power = spec.abs().pow(cfg["power"])
        fbank = mel_filterbank(cfg["n_fft"], cfg["n_mels"], cfg["sample_rate"], cfg["f_min"], cfg["f_max"])
        return torch.matmul(fbank.to(wave.device), power)


def resemblyzer_weights_path() -> Path:
    """The ``pretrained.pt`` inside the installed resemblyzer package, found without importing it.

    (Importing resemblyzer imports webrtcvad and librosa, which the encoder itself does not need.)
    """
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise FacevoxError(
            'the resemblyzer package is not installed: pip install "facevox[speaker-baseline]", '
            "or pass the path of a Resemblyzer pretrained.pt"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


def load_resemblyzer_weights(model: VoiceEncoder, path: str | Path | None = None) -> VoiceEncoder:
    """Load Resemblyzer's pretrained weights (default: the installed package's) into ``model``, in place.

    Raises :class:`FacevoxError` when the package or file is missing, the file is not a Resemblyzer
    checkpoint, or its tensors do not fit ``model`` (a voice_encoder built with other sizes).
    """
    path = resemblyzer_weights_path() if path is None else Path(path)
    if not path.is_file():
        raise FacevoxError("Resemblyzer weights file not found", where=path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file can fail in many ways inside the unpickler
        raise FacevoxError(f"cannot read Resemblyzer weights ({type(err).__name__}: {err})", where=path) from err
    state = checkpoint.get("model_state") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise FacevoxError("not a Resemblyzer checkpoint: no 'model_state' entry", where=path)
    problem = _state_mismatch(model.state_dict(), state)
    if problem:
        raise FacevoxError(f"Resemblyzer weights do not fit this voice_encoder: {problem}", where=path)
    model.load_state_dict(state)
    return model


def _state_mismatch(own: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> str:
    """'' when ``theirs`` loads strictly into ``own``, else the first problem in words."""
    missing, unexpected = sorted(own.keys() - theirs.keys()), sorted(theirs.keys() - own.keys())
    if missing:
        return f"the file lacks {_first_of(missing)}"
    if unexpected:
        return f"the file has unknown {_first_of(unexpected)}"
    for key, tensor in own.items():
        if tuple(theirs[key].shape) != tuple(tensor.shape):
            return f"{key} is {tuple(theirs[key].shape)} in the file but {tuple(tensor.shape)} in the model"
    return ""


def _first_of(keys: list[str]) -> str:
    return keys[0] + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")


@register_model("voice_encoder")
def voice_encoder(
    *, in_dim: int = 40, hidden_size: int = 256, num_layers: int = 3, embed_dim: int = 256, pretrained: bool = False
) -> VoiceEncoder:
    """Resemblyzer's LSTM encoder: mel frames (B, 40, T) -> L2-normalised embeddings (B, 256).

    ``pretrained`` loads the weights shipped with the installed resemblyzer package (needs the
    default sizes); the other sizes are for tiny test models.
    """
    model = VoiceEncoder(in_dim, hidden_size, num_layers, embed_dim)
    return load_resemblyzer_weights(model) if pretrained else model
