"""Evaluation: excluders, mAP/CMC/mINP, the CMC protocols, re-ranking, and reporting (summary, results JSON,
rank pictures, plots). numpy only.
"""
