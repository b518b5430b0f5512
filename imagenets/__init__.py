"""imagenets: the core of the ImageNet-S toolbox (subset table, metadata, mask codec, shared I/O, CLI)."""

__version__ = "0.1.0"
