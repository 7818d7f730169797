"""Video results as table rows (CSV, Parquet): defined in :mod:`facescan.schema` beside ``result_rows``."""

from facescan.schema import video_frame_rows, video_track_rows

__all__ = ["video_frame_rows", "video_track_rows"]
