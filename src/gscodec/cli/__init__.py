"""Command-line tools: gsenc, gsdec, gsinfo."""
