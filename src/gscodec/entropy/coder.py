"""Range coding of integer symbols with integer tables, over constriction's range coder.

Each table `f` (sum 2**24, entries >= 1) is handed to constriction as the exactly
representable float64 probabilities f / 2**24 with perfect quantisation, which
reproduces `f` exactly; the coder then only does integer arithmetic.
"""
from __future__ import annotations

import numpy as np

from ..errors import CorruptError
from .tables import PRECISION, Model


class Encoder:
    """Collects groups of symbols, each with its model, into one range-coded stream."""

    def __init__(self) -> None:
        import constriction

        self._enc = constriction.stream.queue.RangeEncoder()
        self._cache: dict[int, object] = {}

    def encode(self, symbols: np.ndarray, model: Model) -> None:
        """Append symbols (all in 0..model.n-1) coded with `model`."""
        s = np.ascontiguousarray(np.asarray(symbols).ravel(), dtype=np.int32)
        if s.size == 0:
            return
        if s.min() < 0 or s.max() >= model.n:
            raise ValueError(f"symbol outside alphabet 0..{model.n - 1}")
        if model.n == 1:
            return  # a one-symbol alphabet carries no information (and constriction rejects it)
        self._enc.encode(s, self._model(model))

    def encode_with_contexts(self, symbols: np.ndarray, contexts: np.ndarray, models: list[Model]) -> None:
        """Code symbols grouped by context: context 0's symbols first, in stream order, then 1, ..."""
        s = np.asarray(symbols).ravel()
        c = np.asarray(contexts).ravel()
        for ctx, model in enumerate(models):
            self.encode(s[c == ctx], model)

    def _model(self, model: Model):
        key = id(model)
        cm = self._cache.get(key)
        if cm is None:
            cm = _to_constriction(model)
            self._cache[key] = cm
        return cm

    def finish(self) -> bytes:
        """Return the coded bytes (32-bit words, little-endian)."""
        words = np.asarray(self._enc.get_compressed(), dtype="<u4")
        return words.tobytes()


class Decoder:
    """Reads back what an Encoder wrote, group by group, in the same order and models."""

    def __init__(self, data: bytes) -> None:
        import constriction

        if len(data) % 4:
            raise CorruptError(f"entropy-coded stream length {len(data)} is not a multiple of 4")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        self._dec = constriction.stream.queue.RangeDecoder(words)
        self._cache: dict[int, object] = {}

    def decode(self, model: Model, count: int) -> np.ndarray:
        """Decode `count` symbols coded with `model`."""
        if count == 0 or model.n == 1:
            return np.zeros(int(count), dtype=np.int64)
        cm = self._cache.get(id(model))
        if cm is None:
            cm = _to_constriction(model)
            self._cache[id(model)] = cm
        try:
            out = self._dec.decode(cm, int(count))
        except Exception as exc:  # constriction raises its own errors on corrupt input
            raise CorruptError(f"entropy-coded stream is corrupt ({exc})") from None
        return np.asarray(out, dtype=np.int64)

    def decode_with_contexts(self, contexts: np.ndarray, models: list[Model]) -> np.ndarray:
        """Inverse of Encoder.encode_with_contexts for known contexts."""
        c = np.asarray(contexts).ravel()
        out = np.zeros(c.size, dtype=np.int64)
        for ctx, model in enumerate(models):
            idx = np.nonzero(c == ctx)[0]
            out[idx] = self.decode(model, idx.size)
        return out


def _to_constriction(model: Model):
    import constriction

    p = model.freqs.astype(np.float64) / float(1 << PRECISION)
    return constriction.stream.model.Categorical(p, perfect=True)
