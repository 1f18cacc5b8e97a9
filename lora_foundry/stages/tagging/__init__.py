"""Tagging family: pose, faces and expressions, lighting, all feeding the ``tags`` union.

Algorithms: ``pose`` (rules on COCO keypoints), ``faces`` (crop geometry, vocabulary),
``lighting`` (pixel statistics), ``tags`` (the union, subject boxes). Workspace: ``pose_stage``,
``face_stage``, ``lighting_stage``."""
