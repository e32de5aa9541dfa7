"""Synthetic voices: the MelGAN vocoder, the generated-speech detector and the waveform GAN to invert."""
