"""GAN inversion: find the latent z that makes a generator draw a given face.

Three methods (the seed's comparison): Adam on z (:mod:`.optimise`), a ResNet-18 encoder trained
on (z, G(z)) pairs (:mod:`.encoder`), and the hybrid (the encoder's z refined by a few Adam
steps). Perceptual losses and the Frechet distance use a named feature network
(:mod:`.perceptual`); :mod:`.evaluate` compares the methods and writes the report.
"""
