"""Many videos on every core: worker processes decode, the driver alone writes the manifest."""

from __future__ import annotations

import pytest

from lora_foundry.progress import CallbackProgress, Cancelled
from lora_foundry.stages.frames import ingest_stage as ingest
from lora_foundry.stages.frames.parallel_ingest_stage import ingest_videos
from lora_foundry.workspace import Workspace, WorkspaceBusyError

OPTIONS = ingest.VideoIngestOptions(mode="scene", per_shot=2, long_side=160, end_s=3.0)
VIDEOS = ("signer_book.mkv", "signer_help.mkv", "big_buck_bunny_clip.mp4", "montage_6_shots.mp4")


def _contents(ws: Workspace, handles) -> list:
    """Every row a user would read back, with the bytes of its file."""
    return [(ws.stage_info(h)["plan"], [(i.relpath, i.frame_index, i.time_s, i.shot, i.path.read_bytes())
                                        for i in ws.items(h)]) for h in handles]


def test_two_workers_give_the_workspace_one_worker_gives(tmp_path, media_dir):
    videos = [media_dir / name for name in VIDEOS]
    reports = []
    parallel = Workspace.open(tmp_path / "parallel")
    handles = ingest_videos(parallel, videos, OPTIONS, workers=2,
                            progress=CallbackProgress(lambda done, total: reports.append((done, total))))
    sequential = Workspace.open(tmp_path / "sequential")
    expected = [ingest.ingest_video(sequential, video, OPTIONS) for video in videos]
    assert [h.stage_key for h in handles] == [h.stage_key for h in expected]
    assert _contents(parallel, handles) == _contents(sequential, expected)
    assert all(parallel.count(h) >= 2 for h in handles)
    assert len({total for _, total in reports}) == 1, "one bar over all videos"
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
    assert reports[-1][0] == reports[-1][1]
    # a second run finds every video done and commits nothing
    again = ingest_videos(parallel, videos, OPTIONS, workers=2)
    assert again == handles and _contents(parallel, again) == _contents(sequential, expected)


def test_a_cancelled_parallel_ingest_resumes_to_the_same_workspace(tmp_path, media_dir):
    videos = [media_dir / name for name in VIDEOS]
    ws = Workspace.open(tmp_path / "resumed")
    seen = []

    def stop_halfway() -> bool:
        return bool(seen) and seen[-1][0] > seen[-1][1] // 2

    with pytest.raises(Cancelled):
        ingest_videos(ws, videos, OPTIONS, workers=2,
                      progress=CallbackProgress(lambda done, total: seen.append((done, total)), stop_halfway))
    handles = ingest_videos(ws, videos, OPTIONS, workers=2)
    clean = Workspace.open(tmp_path / "clean")
    assert _contents(ws, handles) == _contents(clean, ingest_videos(clean, videos, OPTIONS, workers=1))
    assert not list((tmp_path / "resumed").rglob(".tmp-*"))


def test_the_driver_holds_one_writer_lock_for_all_its_stages(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    other = Workspace.open(tmp_path / "ws")  # as another process would
    with ws.writing(), ws.stage("a", 1, {}) as first, ws.stage("b", 1, {}) as second:
        assert not first.complete and not second.complete
        with pytest.raises(WorkspaceBusyError), other.stage("c", 1, {}):
            pass
    with other.stage("c", 1, {}) as third:  # released when the driver is done
        assert not third.complete


def test_measuring_frames_on_a_thread_pool_gives_the_values_of_one_thread(tmp_path, media_dir):
    from lora_foundry import names
    from lora_foundry.stages.frames import filter_stage

    values = []
    for workers in (1, 3):
        ws = Workspace.open(tmp_path / f"ws{workers}")
        frames = ingest.ingest_video(ws, media_dir / "montage_6_shots.mp4",
                                     ingest.VideoIngestOptions(mode="interval", interval_s=0.5, long_side=160))
        reports: list[int] = []
        measured = filter_stage.measure(ws, frames, CallbackProgress(lambda d, _t, seen=reports: seen.append(d)),
                                        workers=workers)
        by_index = {i.id: i.frame_index for i in ws.items(frames)}
        values.append({by_index[item]: value for item, value in ws.annotations(measured, names.MEASURE).items()})
        assert reports == list(range(len(by_index) + 1))
    assert values[0] == values[1] and len(values[0]) == 42


def test_two_pass_modes_in_workers_record_their_plan_as_a_local_run_does(tmp_path, media_dir):
    options = ingest.VideoIngestOptions(mode="keyframes", long_side=96)
    videos = [media_dir / "signer_book.mkv", media_dir / "big_buck_bunny_clip.mp4"]
    parallel = Workspace.open(tmp_path / "parallel")
    handles = ingest_videos(parallel, videos, options, workers=2)
    sequential = Workspace.open(tmp_path / "sequential")
    expected = [ingest.ingest_video(sequential, video, options) for video in videos]
    assert _contents(parallel, handles) == _contents(sequential, expected)
    assert all(ingest.ingest_summary(parallel, h).mode == "keyframes" and parallel.count(h) >= 1 for h in handles)


@pytest.mark.parametrize("workers", [1, 2], ids=["one by one", "in workers"])
def test_each_video_is_probed_once(tmp_path, media_dir, monkeypatch, workers):
    """Probing opens the file and decodes a frame: the one-by-one path probes for its bar and hands
    the probe to the ingest (it used to probe every video twice)."""
    from lora_foundry.media import video

    probes = []
    real_probe = video._probe_av
    monkeypatch.setattr(video, "_probe_av", lambda path: probes.append(path) or real_probe(path))
    videos = [media_dir / "signer_book.mkv", media_dir / "signer_help.mkv"]
    handles = ingest_videos(Workspace.open(tmp_path / "ws"), videos, OPTIONS, workers=workers)
    assert len(handles) == 2
    assert sorted(probes) == sorted(videos)
