"""Deterministic entropy coding: integer symbols and integer tables <-> bytes."""
from .coder import Decoder, Encoder
from .tables import PRECISION, TOTAL, Model, choose_model, geometric_table, quantize_counts

__all__ = ["Decoder", "Encoder", "Model", "PRECISION", "TOTAL", "choose_model",
           "geometric_table", "quantize_counts"]
