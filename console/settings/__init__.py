"""Settings packages: base (shared), dev (the run command), test (pytest), production (docker)."""
