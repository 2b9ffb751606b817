"""Paper-scale evaluation (Tables 2–3 and PRDC) of generate run folders: streaming, cached, resumable."""
from .core import evaluate_run, reference, sdxl_suite, table2_markdown, tiny_suite
from .extractors import (ClipExtractor, DreamSimExtractor, InceptionExtractor, MissingExtraError, TinyExtractor,
                         dreamsim_features)
from .scores import clip_score, diversity, feature_stats, fid, inception_score, prdc, read_stats, write_stats
from .store import FeatureCache, extract, folder_items, run_items

__all__ = ["evaluate_run", "reference", "sdxl_suite", "table2_markdown", "tiny_suite", "ClipExtractor",
           "DreamSimExtractor", "InceptionExtractor", "MissingExtraError", "TinyExtractor", "dreamsim_features",
           "clip_score", "diversity", "feature_stats", "fid", "inception_score", "prdc", "read_stats", "write_stats",
           "FeatureCache", "extract", "folder_items", "run_items"]
