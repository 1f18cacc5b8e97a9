"""Clips family: shots into model-ready video clips (``rules`` plans, ``cutter`` cuts,
``cut_stage`` drives the workspace), per-clip filters and motion captions. Decoding is
``media/video``, encoding ``media/video_writer``."""
