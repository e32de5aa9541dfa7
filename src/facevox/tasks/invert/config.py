"""Settings of GAN inversion (recipes in ``src/facevox/recipes/invert/``)."""

from __future__ import annotations

import dataclasses

from facevox.config import MAX_IMAGE_SIZE, SEED, TrainConfig, ranged


@dataclasses.dataclass
class GeneratorSettings:
    # "dcgan-face" (gan-face-generate's 64x64 DCGAN), "wavegan:MODEL_FOLDER" (facevox voice train-gan),
    # "package.module:factory" (a callable returning an nn.Module), or a TorchScript file;
    # "" = the encoder's generator, else dcgan-face
    source: str = ""
    weights: str = ""  # state dict to load into the module (dcgan-face: default gan-face-generate's file)
    nz: int | None = ranged(None, ge=1)  # latent size; None = the module's ``nz`` attribute (100 for dcgan-face)
    output_range: tuple[float, float] = ranged((-1.0, 1.0), order="<")  # the generator's pixel range, mapped to [0, 1]


@dataclasses.dataclass
class FeatureSettings:
    # the network of the perceptual loss and of FD: "random-resnet18" (untrained ResNet-18, seed 0),
    # a facevox model folder (fakeface detector or face embedder), "package.module:factory", or
    # "none"; "" = the encoder's network, else random-resnet18. Audio generators: "mrstft-logmel"
    # (the default), a facevox speaker model folder (adds its embeddings) or "none"
    network: str = ""
    stages: list[str] = dataclasses.field(default_factory=list)  # module names; [] = the network's defaults
    # images are resized to this square; 0 = the network's own size (at least 32)
    input_size: int = ranged(0, ge=0, le=MAX_IMAGE_SIZE)


@dataclasses.dataclass
class AudioLossSettings:
    # the perceptual distance of an audio generator (wavegan:): weights of its terms
    stft: float = ranged(1.0, ge=0)  # multi-resolution STFT loss (spectral convergence + log-magnitude L1)
    logmel: float = ranged(1.0, ge=0)  # L1 of the log-mel spectrograms (80 bands, hop 256)
    speaker: float = ranged(1.0, ge=0)  # 1 - cosine of the embeddings of the speaker model that --features names


@dataclasses.dataclass
class EncoderSettings:
    width: int = ranged(64, ge=1)  # ResNet-18 width (64 = the standard ResNet-18)
    # the encoder sees G(z) resized to this square; 0 = the generator's size
    input_size: int = ranged(0, ge=0, le=MAX_IMAGE_SIZE)
    samples_per_epoch: int = ranged(64000, ge=1)  # z ~ N(0, I) drawn afresh from per-sample seeds
    # the seed's loss: z-loss + pixel loss + perceptual loss on G(E(G(z))); the seed gives no weights
    z_loss: float = ranged(1.0, ge=0)  # MSE between E(G(z)) and z
    pixel_loss: float = ranged(1.0, ge=0)  # MSE between G(E(x)) and x, pixels in [0, 1]
    perceptual_loss: float = ranged(1.0, ge=0)  # perceptual distance between G(E(x)) and x
    licence: str = "MIT"  # of the training data: images drawn by the generator (gan-face-generate: MIT)


@dataclasses.dataclass
class OptimSettings:
    steps: int = ranged(200, ge=0)  # Adam steps of the optimisation method (the seed's table: 200)
    hybrid_steps: int = ranged(50, ge=0)  # Adam steps after the encoder's prediction (the seed's table: 50)
    lr: float = ranged(0.05, gt=0)
    pixel: float = ranged(1.0, ge=0)  # weight of the pixel MSE (images in [0, 1])
    perceptual: float = ranged(1.0, ge=0)  # weight of the perceptual distance
    prior: float = ranged(0.0, ge=0)  # weight of ||z||^2 / nz: keeps z near the N(0, I) shell
    restarts: int = ranged(1, ge=1)  # random starts per image; the lowest final loss wins (hybrid: one start)
    batch_size: int = ranged(50, ge=1)  # images optimised together (each has its own z and loss)
    seed: int = ranged(0, **SEED)  # of the random starts
    log_every: int = ranged(50, ge=0)  # a progress line on stderr every this many steps (0: none)


@dataclasses.dataclass
class InvertConfig:
    generator: GeneratorSettings = dataclasses.field(default_factory=GeneratorSettings)
    features: FeatureSettings = dataclasses.field(default_factory=FeatureSettings)
    encoder: EncoderSettings = dataclasses.field(default_factory=EncoderSettings)
    optim: OptimSettings = dataclasses.field(default_factory=OptimSettings)
    audio: AudioLossSettings = dataclasses.field(default_factory=AudioLossSettings)
    train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(epochs=10, batch_size=64, lr=1e-3, scheduler="cosine", warmup_steps=200)
    )
    device: str = "auto"  # of run and eval, in fp32 (training uses train.device and train.precision)
