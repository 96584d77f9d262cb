"""Trend charts: one task draws every active device's charts (draw), their look
(picture_template), and atomic files with their `path` records (submit_path)."""
