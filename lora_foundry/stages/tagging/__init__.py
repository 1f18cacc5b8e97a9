"""Tagging family: pose, faces and expressions, lighting, general WD14 tags, all feeding the ``tags`` union.

Algorithms: ``pose`` (rules on COCO keypoints), ``faces`` (crop geometry, vocabulary),
``lighting`` (pixel statistics), ``wd14`` (a WD14 tagger's input tensor, thresholds, tag spelling),
``tags`` (the union, subject boxes). Workspace: ``pose_stage``, ``face_stage``, ``lighting_stage``,
``wd14_stage``."""
