"""Shared core of the serverless CLIP classifier: head, weights, embedder, preprocessing, storage.

Modules import only what they need, so the feature-scoring function (NumPy + pydantic) never loads
onnxruntime or Pillow.
"""

__version__ = "0.1.0"
