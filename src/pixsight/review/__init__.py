"""Human review of doubtful results: a claim-based queue (:mod:`.queue`) and the export of
reviewed images as a training dataset (:mod:`.export`)."""

from .export import EXPORT_FORMATS, ExportSummary, export_reviewed
from .queue import (DECISIONS, Review, ReviewError, ReviewItem, UnknownImageError, history, next_item,
                    reviewed_items, stats, submit)

__all__ = ["DECISIONS", "EXPORT_FORMATS", "ExportSummary", "Review", "ReviewError", "ReviewItem",
           "UnknownImageError", "export_reviewed", "history", "next_item", "reviewed_items", "stats", "submit"]
