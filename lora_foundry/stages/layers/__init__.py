"""Layers family: characters cut out of frames and backgrounds filled.

Algorithms: ``segment`` (SAM 2 instances, character rules), ``text_select`` (characters by text
through CLIP), ``split`` (options, segmenter, layer masks), ``inpaint`` (LaMa/OpenCV windows),
``video_tracking`` (SAM 2 through a shot without holding it). Workspace: ``split_stage``,
``track_stage``, ``inpaint_stage``."""
