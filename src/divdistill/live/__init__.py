"""The live page (issue 18): the tiny world exported to ONNX and run in the reader's browser by onnxruntime-web."""
from .export import MODELS, build_cache, export_world, world_hash
from .noise import N_SEEDS, noise_arrays
from .site import build_site

__all__ = ["MODELS", "N_SEEDS", "build_cache", "build_site", "export_world", "noise_arrays", "world_hash"]
