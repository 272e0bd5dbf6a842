"""Array types shared by the preprocessing, the embedder and the head."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Every tensor the classifier computes with is float32.
F32 = npt.NDArray[np.float32]
