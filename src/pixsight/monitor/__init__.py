"""Monitoring: drift between a reference and a current window of analysed images (issue 4)."""

from .drift import DriftError, DriftReport, DriftWindow, detect_drift, drift_plot, load_window, psi

__all__ = ["DriftError", "DriftReport", "DriftWindow", "detect_drift", "drift_plot", "load_window", "psi"]
