"""The names stages exchange through the workspace, each written down once with who writes and reads it.

A stage leaves three kinds of named facts for later stages, nodes and the CLI: annotations on
items (``ws.annotations(handle, name)``), the kind of each item it makes (``NewItem(kind=...)``)
and keys in its stage info (``st.set_info``, read with ``ws.stage_info`` / ``ws.nearest_info``);
plus a few item ``meta`` keys read by another stage. A misspelt name on either side reads nothing
and fails silently (an empty dict, a ``.get`` default), so the names live here, and
``tests/test_names.py`` fails when code uses one that is not declared below.

Each comment says: writer → readers. Plain strings: they are stored in workspaces, so a value
never changes (a new name is added instead).
"""

from __future__ import annotations

# -- annotations: {item id: value} per stage; the nearest stage in a lineage wins ------------------
TAGS = "tags"  # taggers, text-chosen cut-outs (the union) → Workspace.tags: captions, taggers, layer split
CLUSTER = "cluster"  # cluster_stage (int, -1 = noise) → select_stage, captions (core tags), pose tracks, faces report
CLUSTER_PROBABILITY = "cluster_probability"  # cluster_stage → (kept for inspection; no stage reads it)
STYLE_KEPT = "style_kept"  # cluster_stage in style mode (bool) → (kept for inspection)
CAPTION = "caption"  # captions stage, add_arrays (typed) → kohya writer, frames_to_arrays, nodes/captions summary
CAPTION_DROPPED = "caption_dropped"  # captions stage ({tag: reason}) → (kept for inspection)
EMBEDDING_ROW = "embedding_row"  # embed_stage ({"file", "row"} of its .npy) → load_embeddings: cluster, select stages
POSE_KEYPOINTS = "pose_keypoints"  # pose_stage (points, scores, box, size) → its tags pass, cluster actions mode
POSE_TAGS = "pose_tags"  # pose_stage ({cue: tag}) → TagPose node report
EXPRESSION = "expression"  # face_stage on crops ({"label", "probability"}) → (inspection; the label joins tags)
FACES = "faces"  # face_stage on the input items (boxes, scores, landmarks) → face_stage report
LIGHTING = "lighting"  # lighting_stage (pixel statistics) → (kept for inspection)
LIGHTING_TAGS = "lighting_tags"  # lighting_stage → TagLighting node report
WD14_TAGS = "wd14_tags"  # wd14_stage ({tags, scores, characters, rating}) → TagFrames node preview and report
MEASURE = "measure"  # filter_stage.measure (phash, sharpness, brightness, contrast) → filter_frames
DROPPED = "dropped"  # filter_frames on dropped items (the reason) → (kept for inspection)
BOX = "box"  # layer split on cut-outs (character box in frame coordinates) → pose_stage subject box
INSTANCE = "instance"  # layer split on cut-outs (character number in the frame) → (kept for inspection)
CROP_BOX = "crop_box"  # layer split on cut-outs (where the crop sits in the frame) → (kept for inspection)
AREA = "area"  # layer split on cut-outs (mask pixels) → (kept for inspection)
SCORE = "score"  # layer split on cut-outs (segmenter confidence) → (kept for inspection)
FOUND_BY = "by"  # layer split on cut-outs (segmenter, "text" or "track") → (kept for inspection)
TRACK = "track"  # layer tracking on cut-outs (object number in the shot) → (inspection; pose reads META_TRACK)
TEXT_MATCH = "text_match"  # layer split, character chosen by text (the phrase) → (kept for inspection)
TEXT_SIMILARITY = "text_similarity"  # layer split, character chosen by text → (kept for inspection)
HOLE_AREA = "hole_area"  # layer split on backgrounds → (kept for inspection)
CHARACTERS = "characters"  # layer split on backgrounds (characters cut out) → (kept for inspection)
HOLE_IN = "hole_in"  # layer split on backgrounds (where the hole is stored: "alpha") → (kept for inspection)
INPAINT_METHOD = "method"  # inpaint_stage on clean backgrounds → (kept for inspection)
FILLED_AREA = "filled_area"  # inpaint_stage on clean backgrounds → (kept for inspection)
DILATE_PX = "dilate_px"  # inpaint_stage on clean backgrounds → (kept for inspection)
CLIP_STATS = "clip_stats"  # cut_stage on clips (motion, brightness, sharpness, phash) → clip filter stage
CAMERA = "camera"  # clip caption stage (camera motion label and measures) → (kept for inspection)

ANNOTATIONS = frozenset({
    TAGS, CLUSTER, CLUSTER_PROBABILITY, STYLE_KEPT, CAPTION, CAPTION_DROPPED, EMBEDDING_ROW, POSE_KEYPOINTS,
    POSE_TAGS, EXPRESSION, FACES, LIGHTING, LIGHTING_TAGS, MEASURE, DROPPED, BOX, INSTANCE, CROP_BOX, AREA,
    SCORE, FOUND_BY, TRACK, TEXT_MATCH, TEXT_SIMILARITY, HOLE_AREA, CHARACTERS, HOLE_IN, INPAINT_METHOD,
    FILLED_AREA, DILATE_PX, WD14_TAGS, CLIP_STATS, CAMERA,
})

# -- item kinds: Item.kind, set when a stage makes a new item ---------------------------------------
KIND_FRAME = "frame"  # ingest_video → (no reader tests it: frames are images to every stage)
KIND_IMAGE = "image"  # ingest_folder, add_arrays → (no reader tests it)
KIND_CUTOUT = "cutout"  # layer split/tracking (alpha = the character) → cutouts_and_backgrounds, LayersToMasks
KIND_BACKGROUND = "background"  # layer split (hole: alpha 0) → inpaint_stage, cutouts_and_backgrounds, layer_mask
KIND_CLEAN_BACKGROUND = "clean_background"  # inpaint_stage → (no reader tests it)
KIND_FACE = "face"  # face_stage crops (parent = the item) → (no reader tests it)
KIND_CLIP = "clip"  # cut_stage (an H.264 MP4 clip inside one shot) → clip filter, captions, musubi dataset
KIND_RENDER = "render"  # evaluate.cell_store (one rendered cell of a LoRA evaluation) → evaluate.cell_store

KINDS = frozenset({KIND_FRAME, KIND_IMAGE, KIND_CUTOUT, KIND_BACKGROUND, KIND_CLEAN_BACKGROUND, KIND_FACE,
                   KIND_RENDER, KIND_CLIP})

# -- stage-info keys: facts one stage records for later readers -------------------------------------
INFO_PLAN = "plan"  # ingest_video (cuts, samples, mode) → IngestSummary: resume, CLI, LoadVideoFrames
INFO_VIDEO = "video"  # ingest_video (the probed VideoInfo) → IngestSummary: cut times in the CLI
INFO_MISSING_FRAMES = "missing_frames"  # ingest_video (planned, not decoded) → IngestSummary: LoadVideoFrames
INFO_SKIPPED = "skipped"  # ingest_folder (files) → IngestSummary: LoadImageFolder; inpaint_stage (a count) → none
INFO_REPORT = "report"  # filter_frames (kept/dropped and why) → its cache hit, preview_thumbnails summary
INFO_EMBEDDING_METHOD = "embedding_method"  # embed_stage → embedding_info: cluster, select stages, EmbedFrames
INFO_EMBEDDING_MODEL = "embedding_model"  # embed_stage → cluster stage key, select by text/reference, EmbedFrames
INFO_EMBEDDING_DIM = "embedding_dim"  # embed_stage → EmbedFrames report
INFO_CLUSTER_MODE = "cluster_mode"  # cluster_stage → cluster_summary
INFO_CLUSTER_SIZES = "cluster_sizes"  # cluster_stage ({label: count}) → cluster_summary
INFO_CLUSTER_BACKEND = "cluster_backend"  # cluster_stage → cluster_summary
INFO_DROPPED = "dropped"  # cluster_stage (items the style filter dropped) → cluster_summary
INFO_SELECTED_CLUSTERS = "selected_clusters"  # select_stage → SelectClusters report
INFO_CAPTION_KEEP_TOKENS = "caption_keep_tokens"  # captions stage → caption_info: kohya writer, nodes/captions
INFO_CAPTION_SEPARATOR = "caption_separator"  # captions stage (keep-tokens separator or None) → kohya writer
INFO_CAPTION_LORA_TYPE = "caption_lora_type"  # captions stage → (kept for inspection)
INFO_CAPTION_STYLE = "caption_style"  # captions stage (tags or prose) → kohya writer
INFO_CAPTION_TRIGGER = "caption_trigger"  # captions stage → (kept for inspection)
INFO_CORE_TAGS = "core_tags"  # captions stage ({cluster: tags}) → nodes/captions summary
INFO_TOKEN_WARNINGS = "token_warnings"  # captions stage → nodes/captions summary
INFO_UNTAGGED = "untagged"  # captions stage (items with no tag) → nodes/captions summary
INFO_TAG_FILE_WARNINGS = "tag_file_warnings"  # captions stage (guessed encodings) → nodes/captions summary
INFO_CLIP_PLAN = "clip_plan"  # cut_stage (model, fps, size, clip count, short shots) → clip nodes' reports

INFO_KEYS = frozenset({
    INFO_PLAN, INFO_VIDEO, INFO_MISSING_FRAMES, INFO_SKIPPED, INFO_REPORT, INFO_EMBEDDING_METHOD,
    INFO_EMBEDDING_MODEL, INFO_EMBEDDING_DIM, INFO_CLUSTER_MODE, INFO_CLUSTER_SIZES, INFO_CLUSTER_BACKEND,
    INFO_DROPPED, INFO_SELECTED_CLUSTERS, INFO_CAPTION_KEEP_TOKENS, INFO_CAPTION_SEPARATOR,
    INFO_CAPTION_LORA_TYPE, INFO_CAPTION_STYLE, INFO_CAPTION_TRIGGER, INFO_CORE_TAGS, INFO_TOKEN_WARNINGS,
    INFO_UNTAGGED, INFO_TAG_FILE_WARNINGS, INFO_CLIP_PLAN,
})

# -- item meta keys another stage reads ----------------------------------------------------------------
META_NAME = "name"  # ingest_folder (the original file name) → captions stage (matching imported tag files)
META_TRACK = "track"  # layer tracking on cut-outs → pose_stage (one track per character for motion cues)
META_ALPHA = "alpha"  # add_arrays (the batch came with a mask) → (kept for inspection)
META_FACE_BOX = "face_box"  # face_stage crops → (kept for inspection)
META_CROP_BOX = "crop_box"  # face_stage crops, layer split cut-outs → (kept for inspection)

META_CLIP = "clip"  # cut_stage on clips (model, fps, frames, times, source frames, strip) → clip stages, musubi
META_KEYS = frozenset({META_NAME, META_TRACK, META_ALPHA, META_FACE_BOX, META_CROP_BOX, META_CLIP})
