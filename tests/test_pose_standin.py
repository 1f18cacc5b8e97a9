"""Tiny ONNX pose models with rtmlib's contracts, opened by OUR loader; tag rules on keypoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lora_foundry.models import pose_model as PM
from lora_foundry.models.registry import ModelMissingError, resolve
from lora_foundry.stages.tagging import pose as P

K = 17


def save_tiny_rtmpose(path, size=(192, 256), points=None):
    """SimCC model: input [1,3,H,W] -> simcc_x [1,K,2W], simcc_y [1,K,2H]. Random tiny weights, plus
    a bias peaked at input pixels ``points`` ([K, 2], default: all at the centre) so the answer
    is known."""
    import torch

    width, height = size
    points = np.asarray(points if points is not None else [[width / 2, height / 2]] * K, np.float32)

    class TinySimCC(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 8, stride=8)
            self.head_x = torch.nn.Linear(4, K * width * 2)
            self.head_y = torch.nn.Linear(4, K * height * 2)
            with torch.no_grad():
                for head, n, axis in ((self.head_x, width * 2, 0), (self.head_y, height * 2, 1)):
                    head.weight.mul_(1e-3)
                    bias = torch.zeros(K, n)
                    for k in range(K):
                        bias[k, min(n - 1, int(round(points[k, axis] * 2)))] = 10.0
                    head.bias.copy_(bias.ravel())

        def forward(self, x):
            f = self.conv(x).mean(dim=(2, 3))
            return self.head_x(f).view(1, K, -1), self.head_y(f).view(1, K, -1)

    torch.manual_seed(0)
    export(TinySimCC().eval(), torch.zeros(1, 3, height, width), path, ["simcc_x", "simcc_y"])
    return path


def save_tiny_rtmo(path, people=((100.0, 120.0),)):
    """RTMO model: input [1,3,640,640] -> dets [1,N,5], keypoints [1,N,K,3]; every person's
    keypoints sit at one known pixel (x, y) in the model's input."""
    import torch

    class TinyRTMO(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 32, stride=32)
            dets = [[x - 40, y - 80, x + 40, y + 80, 0.9] for x, y in people]
            kps = [[[x, y, 0.9]] * K for x, y in people]
            self.register_buffer("dets", torch.tensor([dets], dtype=torch.float32))
            self.register_buffer("kps", torch.tensor([kps], dtype=torch.float32))

        def forward(self, x):
            zero = self.conv(x).mean() * 0.0
            return self.dets + zero, self.kps + zero

    export(TinyRTMO().eval(), __import__("torch").zeros(1, 3, 640, 640), path, ["dets", "keypoints"])
    return path


def export(model, example, path, outputs):
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=outputs,
                      dynamo=False, opset_version=17)


@pytest.fixture(scope="module")
def pose_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "rtmpose"
    save_tiny_rtmpose(folder / "tiny-rtmpose.onnx")
    save_tiny_rtmo(folder / "tiny-rtmo.onnx")
    return folder


def test_simcc_model_runs_top_down_on_our_boxes(pose_dir):
    pose = PM.load_pose(resolve(PM.POSE_SPEC, "tiny-rtmpose.onnx", [pose_dir]), "cpu")
    assert (pose.kind, pose.details.input_size, pose.details.num_keypoints) == ("simcc", (192, 256), 17)
    image = np.zeros((480, 640, 3), np.uint8)
    boxes = [[100, 50, 200, 350], [400, 100, 600, 300]]
    points, scores = PM.estimate(pose, image, boxes)
    assert points.shape == (2, 17, 2) and scores.shape == (2, 17)
    # The model always answers "input centre": that is each box's centre in the frame.
    assert np.allclose(points[0], [150, 200], atol=1.5)
    assert np.allclose(points[1], [500, 200], atol=1.5)


def test_rtmo_people_are_matched_to_our_boxes(pose_dir):
    pose = PM.load_pose(resolve(PM.POSE_SPEC, "tiny-rtmo.onnx", [pose_dir]), "cpu")
    assert pose.kind == "rtmo" and pose.details.num_keypoints == 17
    image = np.zeros((640, 640, 3), np.uint8)
    points, scores = PM.estimate(pose, image, [[50, 50, 200, 250], [400, 400, 500, 500]])
    assert np.allclose(points[0], [100, 120], atol=1e-3) and scores[0].min() > 0.5
    assert scores[1].max() == 0  # nobody inside the second box


def test_missing_pose_model_names_the_file_and_never_reaches_rtmlib(tmp_path, monkeypatch):
    import rtmlib.tools.base as base

    def no_download(*_a, **_k):
        raise AssertionError("rtmlib tried to download")

    monkeypatch.setattr(base, "download_checkpoint", no_download)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelMissingError, match="put rtmpose-m_simcc-body7"):
        resolve(PM.POSE_SPEC, None, [tmp_path / "rtmpose"])
    with pytest.raises(FileNotFoundError):
        PM.load_pose(tmp_path / "nothing.onnx")


# --- tag rules on synthetic keypoints (COCO-17, image y grows downwards) ---------------------
STAND = np.array([[50, 10], [52, 8], [48, 8], [54, 9], [46, 9], [62, 20], [38, 20], [60, 35], [40, 35],
                  [60, 48], [40, 48], [55, 50], [45, 50], [55, 70], [45, 70], [55, 90], [45, 90]], np.float32)


def body(points, width=100, height=100, hide=()):
    scores = np.ones(17, np.float32)
    scores[list(hide)] = 0.0
    return P.make_body(points, scores, width, height)


def test_action_rules():
    assert P.action(body(STAND)) == "standing"
    walk = STAND.copy()
    walk[[13, 15], 0] += 8
    walk[[14, 16], 0] -= 8
    assert P.action(body(walk)) == "walking"
    assert P.action(body(STAND), speed=0.5) == "walking"
    run = walk.copy()
    run[[13], :] = [66, 64]
    run[[15], :] = [72, 88]
    run[[14, 16], 0] -= 10
    run[:11, 0] += 6  # torso leaning forward
    assert P.action(body(run), speed=2.0) == "running"
    assert P.action(body(STAND), lift=0.6) == "jumping"
    sit = STAND.copy()
    sit[[13, 14], :] = [[75, 52], [65, 52]]  # thighs horizontal
    sit[[15, 16], :] = [[75, 75], [65, 75]]
    assert P.action(body(sit)) == "sitting"
    lying = np.stack([STAND[:, 1], 100 - STAND[:, 0]], axis=1)  # rotated 90 degrees
    assert P.action(body(lying)) == "lying"


def test_view_rules():
    assert P.view(body(STAND)) == "front view"
    turned = STAND.copy()
    turned[0, 0] = 56  # nose well off the eyes' midpoint
    assert P.view(body(turned)) == "three-quarter view"
    side = STAND.copy()
    side[[5, 6, 11, 12], 0] = [51, 49, 51, 49]  # shoulders seen edge-on
    assert P.view(body(side, hide=(2, 4))) == "side view"
    back = STAND.copy()
    back[[5, 6], 0] = [38, 62]  # left shoulder on the image's left: facing away
    assert P.view(body(back, hide=(0, 1, 2))) == "back view"


def test_framing_rules():
    assert P.framing(body(STAND)) == "full body"
    assert P.framing(body(STAND, hide=(13, 14, 15, 16))) == "upper body"
    cropped = STAND.copy()
    cropped[11:, 1] += 200  # legs below the image: not visible even with high scores
    assert P.framing(body(cropped)) == "upper body"
    face = STAND.copy()
    face[[1, 2], 0] = [70, 30]  # eyes far apart: the face fills the frame
    assert P.framing(body(face, hide=range(5, 17))) == "close-up"


def test_motion_cues_from_a_track():
    times = [0.0, 0.5, 1.0, 1.5]
    walking = [body(STAND + [10 * i, 0]) for i in range(4)]
    cues = P.motion_cues(times, walking)
    assert all(speed is not None and 0.25 <= speed < 1.5 for speed, _ in cues)
    low = STAND + [0, 50]
    jump = [body(low, height=200), body(low, height=200), body(low - [0, 30], height=200), body(low, height=200)]
    lifts = [lift for _, lift in P.motion_cues(times, jump)]
    assert lifts[2] > 0.35 and abs(lifts[0]) < 0.1


def test_tracked_cutouts_give_one_motion_track_per_character():
    """Two people in one shot: cut-outs tracked through it are told apart by their track number;
    untracked cut-outs of one cluster, two per frame, cannot be and give no motion track."""
    from lora_foundry.stages.tagging.pose_stage import _tracks
    from lora_foundry.workspace.items import Item

    def cutout(number: int, frame: int, track: int | None) -> Item:
        meta = {} if track is None else {"track": track}
        return Item(number, "cutout", Path(f"{number}.png"), f"{number}.png", frame, "clip.mp4", frame,
                    frame / 25, 0, 64, 64, meta)

    tracked = [cutout(10 * f + t, f, t) for f in range(3) for t in (0, 1)]
    groups = _tracks(tracked, {})
    assert sorted([item.meta["track"] for item in group] for group in groups) == [[0, 0, 0], [1, 1, 1]]
    assert all([item.frame_index for item in group] == [0, 1, 2] for group in groups)
    untracked = [cutout(10 * f + t, f, None) for f in range(3) for t in (0, 1)]
    assert _tracks(untracked, {}) == []
