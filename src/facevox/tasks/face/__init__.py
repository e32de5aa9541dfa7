"""Face verification: alignment, training with hyperspherical margin losses, LFW-protocol evaluation."""
