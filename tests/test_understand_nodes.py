"""The understanding nodes as ComfyUI runs them: a montage through embed, cluster, select, pose,
faces and lighting with stand-in weights; and missing weights fail at once, never downloading."""

from __future__ import annotations

import pytest
from clip_standin import save_tiny_local_dir
from test_faces_standin import MOBILE, save_random_retinaface
from test_pose_standin import save_tiny_rtmpose


@pytest.fixture()
def montage_frames(pack, media_dir, output_root):
    loader = pack.nodes.frames.LoadVideoFrames()
    frames, _ = loader.load(str(media_dir / "montage_6_shots.mp4"), "understand", mode="interval", interval_s=0.5,
                            per_shot=1, start_s=0.0, end_s=0.0, max_frames=0, long_side=256, frame_format="jpg")
    return frames


def no_downloads(monkeypatch):
    """Make every downloader our backends have fail loudly."""
    import facexlib.utils.misc as facexlib_misc
    import open_clip.pretrained as open_clip_pretrained
    import rtmlib.tools.base as rtmlib_base

    def refuse(*_args, **_kwargs):
        raise AssertionError("a backend tried to download")

    monkeypatch.setattr(facexlib_misc, "download_url_to_file", refuse)
    monkeypatch.setattr(rtmlib_base, "download_checkpoint", refuse)
    monkeypatch.setattr(open_clip_pretrained, "download_pretrained", refuse)


def test_missing_weights_give_the_registry_error_and_no_download(pack, models_root, monkeypatch):
    no_downloads(monkeypatch)
    loaders = pack.nodes.loaders
    ModelMissingError = pack.lora_foundry.models.registry.ModelMissingError
    cases = [
        (lambda: loaders.CLIPLoader().load("ViT-B-32__laion2b_s34b_b79k.safetensors", "auto", "cpu"),
         "put ViT-B-32__laion2b_s34b_b79k.safetensors in"),
        (lambda: loaders.PoseLoader().load("dw-ll_ucoco_384.onnx", "cpu"), "put dw-ll_ucoco_384.onnx in"),
        (lambda: loaders.FaceLoader().load("detection_Resnet50_Final.pth", "cpu"), "put detection_Resnet50_Final.pth in"),
    ]
    for load, message in cases:
        with pytest.raises(ModelMissingError, match=message) as error:
            load()
        assert "from http" in str(error.value) and "licence" in str(error.value)
    # a folder name nobody publishes gets the one answer every outside or missing name gets (issue 23)
    with pytest.raises(ModelMissingError, match="model_name 'laion-snapshot/' is not one of the files in "
                                                 "models/open_clip"):
        loaders.CLIPLoader().load("laion-snapshot/", "auto", "cpu")
    assert loaders.CLIPLoader.IS_CHANGED("nothing.safetensors") == "missing"


def test_scene_pipeline_without_weights(pack, montage_frames):
    clusters, tagging = pack.nodes.clusters, pack.nodes.tagging
    embedded, report = clusters.EmbedFrames().embed(montage_frames, "pixels", 8)
    assert "pixels" in report
    again, _ = clusters.EmbedFrames().embed(montage_frames, "pixels", 8)
    assert again == embedded  # the same stage: reused, not recomputed
    result = clusters.ClusterFrames().cluster(embedded, "scenes", 4, 0.97, 0.1, 0.5, "auto")
    scenes, text = result["result"]
    assert result["ui"]["images"] and "clusters" in text
    chosen = clusters.SelectClusters().select(scenes, "size_rank", "0", 1, "", "")["result"][0]
    Workspace = pack.lora_foundry.workspace.Workspace

    with Workspace.from_handle(chosen) as ws:
        picked = ws.items(chosen)
        assert picked and len({ws.annotations(chosen, "cluster")[i.id] for i in picked}) == 1
    lit, lighting_report = tagging.TagLighting().tag(chosen, 0.5)
    with Workspace.from_handle(lit) as ws:
        tags = ws.annotations(lit, "tags")
        assert all(tags[i.id] == ws.annotations(lit, "lighting_tags")[i.id] for i in ws.items(lit))
    assert "items" in lighting_report


def test_pose_faces_and_clip_with_stand_ins(pack, montage_frames, models_root, monkeypatch):
    no_downloads(monkeypatch)
    save_tiny_local_dir(models_root / "open_clip" / "tiny-clip")
    save_tiny_rtmpose(models_root / "rtmpose" / "tiny-rtmpose.onnx")
    save_random_retinaface(models_root / "facedetection")
    clusters, tagging, loaders = pack.nodes.clusters, pack.nodes.tagging, pack.nodes.loaders
    clip = loaders.CLIPLoader().load("tiny-clip/", "auto", "cpu")[0]
    assert loaders.CLIPLoader().load("tiny-clip/", "auto", "cpu")[0] is clip  # cached
    embedded, _ = clusters.EmbedFrames().embed(montage_frames, "clip", 16, clip)
    clustered = clusters.ClusterFrames().cluster(embedded, "characters", 3, 0.9, 0.1, 0.5, "sklearn")["result"][0]
    by_text = clusters.SelectClusters().select(clustered, "text", "", 1, "a bunny in a meadow", "", clip)
    assert "selected clusters" in by_text["result"][1]
    lit, _ = tagging.TagLighting().tag(clustered, 0.0, clip)
    pose = loaders.PoseLoader().load("tiny-rtmpose.onnx", "cpu")[0]
    posed, report = tagging.TagPose().tag(lit, pose, 0.3)
    face = loaders.FaceLoader().load(MOBILE, "cpu")[0]
    out = tagging.DetectFaces().detect(posed, face, 0.0, 0.3, 8, 2, "smiling, sad", clip)
    crops, face_report = out["result"]
    Workspace = pack.lora_foundry.workspace.Workspace

    with Workspace.from_handle(posed) as ws:
        items = ws.items(posed)
        keypoints = ws.annotations(posed, "pose_keypoints")
        assert all(len(keypoints[i.id]["points"]) == 17 for i in items)
        tags = ws.annotations(posed, "tags")
        lighting = ws.annotations(posed, "lighting_tags")
        # the union keeps the lighting tags and adds the pose tags
        assert all(set(lighting[i.id]) <= set(tags[i.id]) for i in items)
    with Workspace.from_handle(crops) as ws:
        faces = ws.items(crops)
        assert faces and all(f.kind == "face" for f in faces)
        assert len(faces) <= 2 * len(items)  # max_faces per image
        expressions = ws.annotations(crops, "expression")
        assert {expressions[f.id]["label"] for f in faces} <= {"smiling", "sad"}
        assert all(expressions[f.id]["label"] in ws.annotations(crops, "tags")[f.id] for f in faces)
    assert "cluster" in face_report and "items with a face" in face_report


def test_faces_report_warns_about_clusters_without_faces(pack, montage_frames):
    faces_report = pack.lora_foundry.stages.tagging.face_stage.faces_report
    Workspace = pack.lora_foundry.workspace.Workspace

    clusters = pack.nodes.clusters
    embedded, _ = clusters.EmbedFrames().embed(montage_frames, "pixels", 8)
    scenes = clusters.ClusterFrames().cluster(embedded, "scenes", 4, 0.97, 0.1, 0.5, "auto")["result"][0]
    with Workspace.from_handle(scenes) as ws:
        items = ws.items(scenes)
        labels = ws.annotations(scenes, "cluster")
        first = next(labels[i.id] for i in items if labels[i.id] != -1)
        counts = {i.id: (1 if labels[i.id] == first else 0) for i in items}
        text, warnings = faces_report(ws, scenes, counts)
    assert f"cluster {first}:" in text
    assert warnings and all("no face found" in w for w in warnings)
    assert not any(f"cluster {first} " in w for w in warnings)
    assert not any("noise" in w for w in warnings)  # noise is reported, never warned about
    assert len(warnings) == len({v for v in labels.values() if v != -1}) - 1


def test_select_by_reference_image_finds_its_scene(pack, montage_frames):
    clusters = pack.nodes.clusters
    Workspace = pack.lora_foundry.workspace.Workspace
    embedded, _ = clusters.EmbedFrames().embed(montage_frames, "pixels", 8)
    scenes = clusters.ClusterFrames().cluster(embedded, "scenes", 4, 0.97, 0.1, 0.5, "auto")["result"][0]
    with Workspace.from_handle(scenes) as ws:
        labels = ws.annotations(scenes, "cluster")
        items = [i for i in ws.items(scenes) if labels[i.id] != -1]
        smallest = min({labels[i.id] for i in items}, key=lambda c: sum(labels[i.id] == c for i in items))
        reference = next(i.path for i in items if labels[i.id] == smallest)
    chosen, report = clusters.SelectClusters().select(scenes, "reference", "", 1, "", str(reference))["result"]
    assert f"selected clusters [{smallest}]" in report
    with Workspace.from_handle(chosen) as ws:
        assert {ws.annotations(chosen, "cluster")[i.id] for i in ws.items(chosen)} == {smallest}


def test_embedding_can_be_cancelled_and_resumes(pack, montage_frames):
    progress_module = pack.lora_foundry.progress
    embed = pack.lora_foundry.stages.clusters.embed_stage
    Workspace = pack.lora_foundry.workspace.Workspace
    calls = []
    stop = progress_module.CallbackProgress(lambda done, total: calls.append(done), lambda: len(calls) >= 3)
    with Workspace.open(__import__("pathlib").Path(montage_frames.workspace)) as ws:
        with pytest.raises(progress_module.Cancelled):
            embed.embed_stage(ws, montage_frames, "pixels", None, 4, stop)
        done_before = list(calls)
        seen = []
        handle = embed.embed_stage(ws, montage_frames, "pixels", None, 4,
                                   progress_module.CallbackProgress(lambda done, total: seen.append(done)))
        items, vectors = embed.load_embeddings(ws, handle)
    # the batch finished before the cancel is kept: the second run starts after it
    assert seen[0] == len(done_before) >= 2
    assert len(items) == len(vectors) > 0
