"""Person descriptors beyond the face: clothing colours and pattern, hair colour and length,
sunglasses, beard, head pose, and posture from MediaPipe's pose model (it ships in the 0.10.x wheel).

Each person is found from their face box: the pose model runs on a window around that face with
the other faces painted out (so it locks on to this person), and its landmarks are kept only when
its nose falls inside this face's box. The torso region comes from the shoulders and hips, or from
the face box when no pose fits. Colours are counted per pixel in HSV families
(:data:`colours.COLOUR_RULES`), leaving out the person's own skin and hair colour. These are
appearance cues for telling people in a photo apart, not a segmentation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from facescan.describe import colours

# Pose landmark indices (MediaPipe BlazePose).
NOSE, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 0, 11, 12, 13, 14, 15, 16
L_HIP, R_HIP, L_KNEE, R_KNEE = 23, 24, 25, 26


def colour_families(rgb: np.ndarray) -> np.ndarray:
    """The :data:`colours.COLOUR_RULES` family index of each pixel of an N×3 RGB array."""
    import cv2

    hsv = cv2.cvtColor(np.asarray(rgb, np.uint8).reshape(-1, 1, 3), cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3)
    h, s, v = hsv[:, 0] * (360 / 256), hsv[:, 1] / 255, hsv[:, 2] / 255
    out = np.full(len(hsv), -1)
    for k, (_, (h0, h1), (s0, s1), (v0, v1)) in enumerate(colours.COLOUR_RULES):
        hue = (h >= h0) & (h < h1) if h0 <= h1 else (h >= h0) | (h < h1)
        hit = (out < 0) & hue & (s >= s0) & (s <= s1) & (v >= v0) & (v <= v1)
        out[hit] = k
    return out


def colour_shares(rgb: np.ndarray) -> dict[str, float]:
    """Share of the pixels in each colour family (families with no pixel left out)."""
    if len(rgb) == 0:
        return {}
    fam = colour_families(rgb)
    names = [rule[0] for rule in colours.COLOUR_RULES]
    counts: dict[str, float] = {}
    for k, n in zip(*np.unique(fam[fam >= 0], return_counts=True)):
        counts[names[k]] = counts.get(names[k], 0.0) + n / len(fam)
    return dict(sorted(counts.items(), key=lambda t: -t[1]))


def _lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.asarray(rgb, np.uint8).reshape(-1, 1, 3), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(float)


@dataclass
class PersonDescription:
    """Appearance and posture cues of the person whose face has index ``face``."""

    face: int
    clothing_colours: dict[str, float] = field(default_factory=dict)  # family → share of torso pixels
    clothing_texture: float = 0.0  # how busy the torso is (pattern cue), 0 = flat
    hair_colour: str | None = None
    hair_length: str | None = None  # "long" | "short"
    eyewear: str = "none seen"  # "sunglasses" | "none seen"
    beard: bool | None = None
    head_pose: dict[str, float] | None = None  # yaw, pitch, roll in degrees (yaw + = turned to image right)
    posture: dict[str, str] = field(default_factory=dict)  # body, arms, facing
    torso_box: tuple[float, float, float, float] | None = None  # x, y, w, h of the region measured

    def clothing_summary(self, min_share: float = 0.12) -> list[str]:
        """Colour families covering at least ``min_share`` of the torso, largest first."""
        return [n for n, s in self.clothing_colours.items() if s >= min_share]

    def as_dict(self) -> dict:
        return {"clothing_colours": self.clothing_summary(), "clothing_colour_shares":
                {k: round(v, 3) for k, v in self.clothing_colours.items()},
                "clothing_texture": round(self.clothing_texture, 2), "hair_colour": self.hair_colour,
                "hair_length": self.hair_length, "eyewear": self.eyewear, "beard": self.beard,
                "head_pose": self.head_pose, "posture": self.posture}


class PersonDescriber:
    """Measures :class:`PersonDescription` for every face of an image (MediaPipe pose, on CPU)."""

    def __init__(self):
        from facescan.detect.mediapipe import import_mediapipe

        mp = import_mediapipe()

        from facescan.detect.mediapipe import _native_stderr_silenced

        with _native_stderr_silenced():
            self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                                min_detection_confidence=0.3)
        self._lock = threading.Lock()  # a MediaPipe graph takes one image at a time

    def close(self) -> None:
        self._pose.close()

    def _landmarks(self, rgb: np.ndarray, boxes, i: int) -> np.ndarray | None:
        """(33, 4) x, y, z, visibility in image pixels for person ``i``, or None."""
        x, y, w, h = boxes[i]
        H, W = rgb.shape[:2]
        masked = rgb.copy()
        for j, (bx, by, bw, bh) in enumerate(boxes):
            if j != i:  # paint the other faces out so the pose model takes this person
                top, left = int(max(0, by - 0.3 * bh)), int(max(0, bx - 0.1 * bw))
                masked[top : int(by + 1.15 * bh), left : int(bx + 1.1 * bw)] = 128
        cx = x + w / 2
        x0, x1 = int(max(0, cx - 2.2 * w)), int(min(W, cx + 2.2 * w))
        y0, y1 = int(max(0, y - 0.6 * h)), int(min(H, y + 7 * h))
        crop = np.ascontiguousarray(masked[y0:y1, x0:x1])
        with self._lock:
            result = self._pose.process(crop)
        if not result.pose_landmarks:
            return None
        pts = np.array([(p.x * (x1 - x0) + x0, p.y * (y1 - y0) + y0, p.z * (x1 - x0), p.visibility)
                        for p in result.pose_landmarks.landmark])
        nx, ny = pts[NOSE, :2]
        if not (x - 0.1 * w <= nx <= x + 1.1 * w and y - 0.1 * h <= ny <= y + 1.1 * h):
            return None  # the pose belongs to someone else
        return pts

    def describe(self, rgb: np.ndarray, boxes: list[tuple[float, float, float, float]],
                 keypoints: list | None = None) -> list[PersonDescription]:
        """Descriptions for face boxes (x, y, w, h) of an RGB image, in the same order."""
        import cv2

        rgb = np.ascontiguousarray(rgb[..., :3])
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        out = []
        for i, (x, y, w, h) in enumerate(boxes):
            d = PersonDescription(face=i)
            pts = self._landmarks(rgb, boxes, i)
            skin = _pixels(rgb, x + 0.25 * w, y + 0.5 * h, x + 0.75 * w, y + 0.75 * h)
            skin_lab = np.median(_lab(skin), 0) if len(skin) else None
            hair = _hair(rgb, x, y, w, h, skin_lab)
            if hair is not None:
                d.hair_colour, hair_lab = hair
            else:
                hair_lab = None
            torso = _torso_box(x, y, w, h, pts, rgb.shape)
            d.torso_box = torso
            tx, ty, tw, th = torso
            pixels = _pixels(rgb, tx, ty, tx + tw, ty + th, [b for j, b in enumerate(boxes) if j != i])
            pixels = _drop_near(pixels, [c for c in (skin_lab, hair_lab) if c is not None], 14.0)
            d.clothing_colours = colour_shares(pixels)
            d.clothing_texture = _texture(gray, torso)
            if hair_lab is not None:
                d.hair_length = _hair_length(rgb, x, y, w, h, hair_lab, skin_lab, pixels,
                                             [b for j, b in enumerate(boxes) if j != i])
            kp = keypoints[i] if keypoints is not None and i < len(keypoints) else None
            if kp is not None and len(kp) >= 4:
                kp = np.asarray(kp, float)
                d.eyewear = _eyewear(gray, x, y, w, h, kp)
                d.beard = _beard(rgb, x, y, w, h, kp, skin_lab)
                d.head_pose = _head_pose(kp)
            d.posture = _posture(pts, w, d.head_pose)
            out.append(d)
        return out


def _pixels(rgb, x0, y0, x1, y1, masks=()) -> np.ndarray:
    """RGB pixels of a rectangle, without those inside ``masks`` (x, y, w, h boxes, padded)."""
    H, W = rgb.shape[:2]
    x0, x1 = int(np.clip(x0, 0, W)), int(np.clip(x1, 0, W))
    y0, y1 = int(np.clip(y0, 0, H)), int(np.clip(y1, 0, H))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 3), np.uint8)
    keep = np.ones((y1 - y0, x1 - x0), bool)
    for bx, by, bw, bh in masks:
        keep[max(0, int(by - 0.1 * bh) - y0) : max(0, int(by + 1.1 * bh) - y0),
             max(0, int(bx - 0.1 * bw) - x0) : max(0, int(bx + 1.1 * bw) - x0)] = False
    return rgb[y0:y1, x0:x1][keep]


def _drop_near(pixels: np.ndarray, colours_lab: list[np.ndarray], distance: float) -> np.ndarray:
    if not len(pixels) or not colours_lab:
        return pixels
    lab = _lab(pixels)
    keep = np.ones(len(pixels), bool)
    for c in colours_lab:
        keep &= np.linalg.norm(lab - c, axis=1) > distance
    return pixels[keep]


def _torso_box(x, y, w, h, pts, shape) -> tuple[float, float, float, float]:
    """Upper torso: the middle of the span between the shoulders, from just below them down to
    halfway to the hips; below the face box when no pose fits."""
    H, W = shape[:2]
    if pts is not None and min(pts[L_SHOULDER, 3], pts[R_SHOULDER, 3]) > 0.5:
        ls, rs = pts[L_SHOULDER, :2], pts[R_SHOULDER, :2]
        span = abs(ls[0] - rs[0])
        mid = (ls[0] + rs[0]) / 2
        top = (ls[1] + rs[1]) / 2
        hips = (pts[L_HIP, 1] + pts[R_HIP, 1]) / 2
        length = hips - top if hips > top else 1.6 * h
        x0, x1 = mid - 0.3 * span, mid + 0.3 * span
        y0, y1 = top + 0.05 * length, top + 0.5 * length
    else:
        cx = x + w / 2
        x0, x1, y0, y1 = cx - 0.5 * w, cx + 0.5 * w, y + 1.3 * h, y + 2.3 * h
    x0, x1 = max(0.0, x0), min(float(W), x1)
    y0, y1 = max(0.0, y0), min(float(H), y1)
    return (x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))


def _texture(gray: np.ndarray, box) -> float:
    """How busy the torso is without a direction: mean |Laplacian| weighted by 1 − the structure
    tensor's coherence, on the region resampled to 64×64. Prints (spots, flowers, checks) score
    high; hair strands and fabric folds, which run one way, and plain cloth score low."""
    import cv2

    x, y, w, h = (int(v) for v in box)
    patch = gray[y : y + h, x : x + w]
    if patch.size < 100:
        return 0.0
    small = cv2.resize(patch, (64, 64), interpolation=cv2.INTER_AREA)
    gx, gy = cv2.Sobel(small, cv2.CV_32F, 1, 0), cv2.Sobel(small, cv2.CV_32F, 0, 1)
    jxx, jyy, jxy = (cv2.GaussianBlur(v, (0, 0), 3) for v in (gx * gx, gy * gy, gx * gy))
    coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + 1e-6)
    return float((np.abs(cv2.Laplacian(small, cv2.CV_32F)) * (1 - coherence)).mean())


def _hair(rgb, x, y, w, h, skin_lab) -> tuple[str, np.ndarray] | None:
    """Hair colour name and Lab colour, from the band above the face box (skin left out)."""
    import cv2

    band = _pixels(rgb, x + 0.15 * w, y - 0.35 * h, x + 0.85 * w, y + 0.02 * h)
    if skin_lab is not None:
        band = _drop_near(band, [skin_lab], 16.0)
    if len(band) < 30:
        return None
    hsv = cv2.cvtColor(band.reshape(-1, 1, 3), cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3).astype(float)
    s, v = hsv[:, 1] / 255, hsv[:, 2] / 255
    # Sky and walls behind short hair are bright and unsaturated or bluish: hair is the rest.
    hue = hsv[:, 0] * 360 / 256
    background = ((hue > 150) & (hue < 260) & (v > 0.35)) | ((s < 0.1) & (v > 0.75))
    hair = band[~background]
    if len(hair) < 30:
        return None
    hh = cv2.cvtColor(hair.reshape(-1, 1, 3), cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3).astype(float)
    hue, s, v = np.median(hh[:, 0]) * 360 / 256, np.median(hh[:, 1]) / 255, np.median(hh[:, 2]) / 255
    lab = np.median(_lab(hair), 0)
    lightness = lab[0] * 100 / 255  # L*
    if v < 0.24:
        name = "black"
    elif s < 0.15 and v > 0.45:
        name = "grey"
    elif hue < 26 and s > 0.4 and v > 0.35:
        name = "red"
    elif lightness > 55 and s < 0.4:
        name = "blond"
    else:
        name = "brown"
    return name, lab


def _hair_length(rgb, x, y, w, h, hair_lab, skin_lab, torso_pixels, others) -> str | None:
    """Long when hair-like pixels (the hair's hue, any lightness; not skin, clothing or a bluish or
    grey background) fill a band beside the neck; None when another face sits in that band.

    A weak cue: long hair behind the shoulders or hair the colour of the clothes is missed.
    """
    bands = [(x - 0.35 * w, x + 0.05 * w), (x + 0.95 * w, x + 1.35 * w)]
    y0, y1 = y + 0.9 * h, y + 1.5 * h
    for bx, by, bw, bh in others:
        if by < y1 and by + bh > y0 and any(bx < b1 and bx + bw > b0 for b0, b1 in bands):
            return None
    clothes = np.median(_lab(torso_pixels), 0) if len(torso_pixels) else None
    background = [i for i, (name, *_) in enumerate(colours.COLOUR_RULES)
                  if name in ("light blue", "blue", "white", "grey")]
    shares = []
    for b0, b1 in bands:
        side = _pixels(rgb, b0, y0, b1, y1)
        if not len(side):
            continue
        lab = _lab(side)
        like = (np.abs(lab[:, 0] - hair_lab[0]) < 50) & (np.linalg.norm(lab[:, 1:] - hair_lab[1:], axis=1) < 9)
        for c in (skin_lab, clothes):
            if c is not None:
                like &= np.linalg.norm(lab - c, axis=1) > 15
        like &= ~np.isin(colour_families(side), background)
        shares.append(float(like.mean()))
    if not shares:
        return None
    return "long" if max(shares) > 0.09 else "short"


def _eyewear(gray, x, y, w, h, kp) -> str:
    """Sunglasses when the eyes are much darker than the cheeks."""
    size = max(4, int(0.18 * w))
    eyes = [gray[int(ey) - size // 2 : int(ey) + size // 2, int(ex) - size // 2 : int(ex) + size // 2]
            for ex, ey in kp[:2]]
    cheek = gray[int(y + 0.55 * h) : int(y + 0.75 * h), int(x + 0.25 * w) : int(x + 0.75 * w)]
    if not all(e.size for e in eyes) or not cheek.size:
        return "none seen"
    ratio = float(np.mean([e.mean() for e in eyes]) / max(float(cheek.mean()), 1.0))
    return "sunglasses" if ratio < 0.45 else "none seen"


def _beard(rgb, x, y, w, h, kp, skin_lab) -> bool | None:
    """A beard darkens the chin below the mouth against the cheeks."""
    if skin_lab is None:
        return None
    mx, my = kp[3]
    chin = _pixels(rgb, mx - 0.2 * w, my + 0.08 * h, mx + 0.2 * w, min(y + h, my + 0.25 * h))
    if len(chin) < 20:
        return None
    delta = skin_lab[0] - np.median(_lab(chin)[:, 0])  # L* (0-255 scale in OpenCV)
    return bool(delta > 45)


def _head_pose(kp) -> dict[str, float]:
    """Yaw, pitch and roll (degrees) from the eye, nose and mouth keypoints."""
    (rx, ry), (lx, ly), (nx, ny), (mx, my) = kp[:4]
    eye_mid = np.array([(rx + lx) / 2, (ry + ly) / 2])
    half = max(np.hypot(lx - rx, ly - ry) / 2, 1.0)
    roll = float(np.degrees(np.arctan2(ly - ry, lx - rx)))
    yaw = float(np.degrees(np.arcsin(np.clip((nx - eye_mid[0]) / half, -1, 1))))
    face_len = max(np.hypot(mx - eye_mid[0], my - eye_mid[1]), 1.0)
    # The nose tip sits ~45% of the way from the eyes to the mouth when the head is level.
    pitch = float(np.degrees(np.arcsin(np.clip(((ny - eye_mid[1]) / face_len - 0.45) / 0.5, -1, 1))))
    return {"yaw": round(yaw, 1), "pitch": round(pitch, 1), "roll": round(roll, 1)}


def _posture(pts, face_w: float, head_pose) -> dict[str, str]:
    """Body (standing / sitting), arms (raised / crossed / down) and facing, where visible."""
    out = {"body": "unknown", "arms": "unknown", "facing": "unknown"}
    if head_pose is not None:
        out["facing"] = "camera" if abs(head_pose["yaw"]) < 20 else (
            "turned right" if head_pose["yaw"] > 0 else "turned left")
    if pts is None:
        return out
    vis = pts[:, 3] > 0.5
    ls, rs = pts[L_SHOULDER, :2], pts[R_SHOULDER, :2]
    if vis[L_SHOULDER] and vis[R_SHOULDER]:
        span = abs(ls[0] - rs[0])
        depth = abs(pts[L_SHOULDER, 2] - pts[R_SHOULDER, 2])
        if span < 1.3 * face_w or depth > 0.6 * span:
            out["facing"] = "turned sideways"
        top = min(ls[1], rs[1])
        if vis[L_WRIST] or vis[R_WRIST]:
            wrists = [pts[k, :2] for k in (L_WRIST, R_WRIST) if vis[k]]
            mid = (ls[0] + rs[0]) / 2
            if any(wy < top - 0.5 * face_w for _, wy in wrists):  # a hand clearly above the shoulders
                out["arms"] = "raised"
            elif (vis[L_WRIST] and vis[R_WRIST] and np.sign(pts[L_WRIST, 0] - mid) != np.sign(ls[0] - mid)
                  and np.sign(pts[R_WRIST, 0] - mid) != np.sign(rs[0] - mid)):
                out["arms"] = "crossed"
            else:
                out["arms"] = "down"
        if vis[L_HIP] and vis[R_HIP] and (vis[L_KNEE] or vis[R_KNEE]):
            hip_y = (pts[L_HIP, 1] + pts[R_HIP, 1]) / 2
            torso = max(hip_y - (ls[1] + rs[1]) / 2, 1.0)
            knees = [pts[k, 1] for k in (L_KNEE, R_KNEE) if vis[k]]
            # Thighs near horizontal (knees barely below the hips) mean sitting.
            out["body"] = "sitting" if (max(knees) - hip_y) < 0.45 * torso else "standing"
    return out
