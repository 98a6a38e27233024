"""Offline face analysis: calibrate thresholds, cluster unlabelled faces, evaluate models and detectors.

Pure math (metrics, protocol, clustering) is kept apart from folder I/O and plotting so that the
numbers can be checked on hand-computed arrays.
"""
