"""Video results as table rows (CSV, Parquet): defined in :mod:`facescan.tables` beside ``result_rows``."""

from facescan.tables import video_frame_rows, video_track_rows

__all__ = ["video_frame_rows", "video_track_rows"]
