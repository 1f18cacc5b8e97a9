"""Frames family: video or folder into the workspace (``ingest_stage``, summarised by
``ingest_summary``), duplicate/blur filtering (``filter_stage``), and frames to and from IMAGE
batches and previews (``interop_stage``). Decoding, sampling, cuts, hashing and blur measures are
``lora_foundry/media``."""
