"""3DGS scenes: PLY I/O, the .gsz base layer, side information, restoration, refinement."""
