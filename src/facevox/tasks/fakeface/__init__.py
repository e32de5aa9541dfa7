"""Detection of GAN-generated faces: data, training, evaluation, prediction and saliency."""
