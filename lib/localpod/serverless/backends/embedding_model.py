"""The embedding model every emulated Infinity worker serves: WordLlama, loaded from its wheel.

This is the stand-in for the Hugging Face model on the worker's GPU, and only that: which model
names a worker serves, what each can do and the answers' shapes are the worker's business
(:mod:`.infinity_worker`); where the model runs is :mod:`.model_process`'s, which calls
:func:`load_wordllama` and :func:`embed_texts` in its child process.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

_model: Any = None
_model_lock = threading.Lock()


def load_wordllama() -> Any:
    """The process-wide WordLlama model (256-d), loaded once from the weights in its wheel.

    ``wordllama`` calls ``logging.basicConfig`` on import; a temporary handler on the root logger
    makes that call a no-op so importing it does not change how the server logs."""
    global _model
    with _model_lock:
        if _model is None:
            # The model process runs the model on one thread, as the worker's one GPU; the
            # tokenizer's own thread pool would compete with the server and its clients for the
            # same cores (measured: about a quarter fewer embeddings/s through localpod with it).
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            root = logging.getLogger()
            guard = logging.NullHandler()
            root.addHandler(guard)
            try:
                import wordllama
                from wordllama import WordLlama
            finally:
                root.removeHandler(guard)
            package_dir = Path(wordllama.__file__).parent
            _model = WordLlama.load(cache_dir=package_dir, disable_download=True)
        return _model


def embed_texts(model: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length float32 vectors for ``texts`` (bge models return normalised embeddings) and
    each text's token count (without special tokens).

    This is WordLlama's ``embed`` (token lookup, mean pooling over the attention mask) written out
    so that the texts are tokenised once: the tokenizer is most of the model's cost, and the usage
    count needs the same attention mask. Texts without any known token get a fixed unit vector
    instead of the NaN an average over zero tokens would give."""
    dimension = model.embedding.shape[1]
    if not texts:
        return np.zeros((0, dimension), dtype=np.float32), np.zeros(0, dtype=np.int64)
    encoded = model.tokenize(texts)
    ids = np.array([enc.ids for enc in encoded], dtype=np.int32)
    mask = np.array([enc.attention_mask for enc in encoded], dtype=np.float32)
    np.clip(ids, 0, model.embedding.shape[0] - 1, out=ids)
    vectors = model.avg_pool(model.embedding[ids], mask)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    bad = ~np.isfinite(norms[:, 0]) | (norms[:, 0] == 0)
    if bad.any():
        vectors[bad] = 1.0
        norms[bad] = np.sqrt(dimension)
    vectors = (vectors / norms).astype(np.float32, copy=False)
    return vectors, mask.sum(axis=1).astype(np.int64)
