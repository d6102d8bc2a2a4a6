"""DVC stage entry points, one module per stage, run as ``python -m stages.<name>``."""
