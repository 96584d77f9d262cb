"""Trend charts: one task draws every active device's charts (draw), their look
(picture_template), and atomic files with their `path` records (renders, was submit_path.py)."""
