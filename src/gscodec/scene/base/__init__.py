"""The .gsz base layer's parts: grid positions, quantisers, context-modelled channels, SH paths."""
