"""The one analysis pipeline: load → detect → align → backend → results.

The CLI, the Python API, ``ask``, evaluation and the service all run this ``Analyzer``.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facescan import crops, taxonomy
from facescan.backends.base import Backend, FaceInput, load_backend
from facescan.detect import Detector, create_detector
from facescan.detect.quality import QualityFloor, crop_quality, face_quality
from facescan.imageio import (
    ImageLoadError,
    ImageSource,
    LoadedImage,
    describe_source,
    expand_inputs,
    is_url,
    load_image,
)
from facescan.schema import Box, Face, ImageResult

if TYPE_CHECKING:
    from facescan.describe.person import PersonDescriber
    from facescan.explain import Explainer

CHIP_SIZE = 224
KEPT_IMAGES_PER_CHUNK = 4  # images per chunk when the decoded photos are returned too
FIRST_CHUNK = 8  # images in a run's first chunk, before its faces per photo are known
FACES_PER_CHUNK = 64  # faces per chunk for a backend without a batch size of its own


def parse_attributes(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"age,gender"`` or a list → validated attribute names (default: age, gender, emotion)."""
    if text is None:
        return taxonomy.DEFAULT_ATTRIBUTES
    items = [a.strip().lower() for a in (text.split(",") if isinstance(text, str) else text) if a.strip()]
    if not items:
        raise ValueError("no attributes given")
    bad = [a for a in items if a not in taxonomy.ATTRIBUTES]
    if bad:
        raise ValueError(f"unknown attribute(s) {', '.join(bad)}; choose from {', '.join(taxonomy.ATTRIBUTES)}")
    return tuple(dict.fromkeys(items))


@dataclass
class Analyzed:
    """One analyzed image: its result, and the decoded photo when it was asked to be kept
    (``image.original`` is then the full-resolution RGB array: annotation and the VLM chooser
    draw on it instead of decoding the file again)."""

    result: ImageResult
    image: LoadedImage | None = None


@dataclass
class Prepared:
    """An image after stage 1 (decoded and detected): its result with faces and boxes but no
    attributes yet, and what the backend will see of each face (``inputs[i]`` is ``result.faces[i]``'s)."""

    result: ImageResult
    inputs: list[FaceInput] = field(default_factory=list)
    started: float = 0.0
    image: LoadedImage | None = None


def looks_bgr(pixels: np.ndarray, detections) -> bool:
    """Whether the detected faces look like a BGR array read as RGB: skin has more red than blue in
    every complexion and ordinary light, so faces whose centres are clearly bluer than red are
    most likely swapped (a cheap check; a blue-lit scene can fool it, so it only warns)."""
    differences = []
    for d in detections:
        x, y, w, h = (int(round(v)) for v in d.box)
        centre = pixels[y + h // 4 : y + 3 * h // 4, x + w // 4 : x + 3 * w // 4].reshape(-1, 3).astype(np.float32)
        if len(centre):
            differences.append(float(np.median(centre[:, 0] - centre[:, 2])))
    return bool(differences) and float(np.median(differences)) < -12.0


class Analyzer:
    """Owns a detector and a backend and turns images into :class:`ImageResult` records.

    ``crops=True`` treats every input as one already-cropped face framed with
    ``crop_padding`` (0.25 for FairFace-style chips) and skips detection.
    """

    def __init__(self, backend: str | Backend = "builtin", detector: str | Detector = "mediapipe",
                 attributes: str | Sequence[str] | None = None, crops: bool = False, crop_padding: float = 0.25,
                 min_face_size: int = 12, max_faces: int | None = None, batch_images: int = 32,
                 explain: bool | Explainer = False, describe: bool | PersonDescriber = False,
                 channels: str = "rgb", allow_urls: bool = True, min_quality: str | QualityFloor | None = None):
        """Backend and detector as spec strings or built objects; ``explain``/``describe`` as True
        (build one) or a built :class:`Explainer` / :class:`PersonDescriber` (shared, as the service does).
        ``channels`` is the colour order of numpy array inputs: ``"rgb"`` or ``"bgr"`` (OpenCV's);
        ``allow_urls=False`` refuses http(s) inputs (the service). ``min_quality`` (a :class:`QualityFloor`
        or its text, ``"size=32,blur=40"``): faces under it are kept, marked ``weak`` with the reasons,
        and get no attributes."""
        if channels not in ("rgb", "bgr"):
            raise ValueError(f"channels must be 'rgb' or 'bgr', not {channels!r}")
        self.channels, self.allow_urls = channels, allow_urls
        self.min_quality = QualityFloor.parse(min_quality)
        self.attributes = parse_attributes(attributes)
        if explain and "emotion" not in self.attributes:
            self.attributes = (*self.attributes, "emotion")  # an explanation explains the emotion
        self.backend = load_backend(backend) if isinstance(backend, str) else backend
        missing = set(self.attributes) - set(self.backend.supported_attributes())
        if missing:
            raise ValueError(f"backend {self.backend.name} cannot predict {', '.join(sorted(missing))}")
        if describe and crops:
            raise ValueError("--describe needs whole photos (people's clothing and posture), not --crops")
        self.crops = crops
        self.crop_padding = crop_padding
        self.detector = None if crops else (create_detector(detector) if isinstance(detector, str) else detector)
        self.min_face_size = min_face_size
        self.max_faces = max_faces
        self.batch_images = batch_images
        self._preparing: ThreadPoolExecutor | None = None
        self.describer = _part(describe, "facescan.describe.person", "PersonDescriber")
        self.explainer = _part(explain, "facescan.explain", "Explainer")
        # a VLM answers the explanation's emotion itself: it is not asked for emotion a second time
        self._vlm_explains = self.explainer is not None and hasattr(self.backend, "ask_image")

    # -- stage 1: load and detect (runs in worker threads) --------------------------------
    def prepare(self, source: ImageSource, keep_image: bool = False, decoded: bool = False) -> Prepared:
        """Stage 1: decode and detect one image (an error is recorded on the result, never raised).

        ``decoded``: ``source`` is an RGB array facescan decoded itself (a video frame), so its
        channel order is not in doubt."""
        started = time.perf_counter()
        name = describe_source(source)
        detector = None if self.crops else self.detector.name
        result = ImageResult(source=name, detector=detector, backend=self.backend.name)
        pending = Prepared(result, started=started)
        try:
            image = load_image(source, name=name, keep_original=keep_image, channels=self.channels,
                               allow_urls=self.allow_urls)
        except ImageLoadError as e:
            result.error = str(e)
            return pending
        except Exception as e:  # noqa: BLE001 - a loader bug is still this input's error, never the batch's
            result.error = f"{name}: cannot load image ({type(e).__name__}: {e})"
            return pending
        pending.image = image if keep_image else None
        result.width, result.height = image.original_size
        pixels = image.pixels
        inv = 1.0 / image.scale
        # only a describer (here, or in another process given ``keep_image``) looks at the whole photo again:
        # otherwise it is let go once the faces are cut out, so photos waiting for the model hold only chips
        whole = pixels if self.describer is not None or keep_image else None
        if self.crops:
            h, w = pixels.shape[:2]
            side = min(h, w)
            chip = crops.center_crop(pixels, side)
            face_w = side / (1 + 2 * self.crop_padding)
            off = (side - face_w) / 2
            box = ((w - side) / 2 + off, (h - side) / 2 + off, face_w, face_w)
            result.faces.append(self._judged(Face(index=0, box=Box(x=box[0] * inv, y=box[1] * inv,
                                                                   width=box[2] * inv, height=box[3] * inv),
                                                  score=1.0, quality=crop_quality(chip, face_w * inv))))
            pending.inputs.append(FaceInput(chip=chip, padding=self.crop_padding, image=whole, box=box))
            return pending
        try:
            detections = self.detector.detect(pixels)
        except Exception as e:  # a detector failure is this image's error, not the batch's
            result.error = f"{name}: face detection failed: {e}"
            return pending
        detections = [d for d in detections if min(d.box[2], d.box[3]) >= self.min_face_size]
        if self.max_faces:
            detections = detections[: self.max_faces]
        # report faces left to right, top to bottom, so indices are stable and readable
        detections.sort(key=lambda d: (d.box[0] + d.box[2] / 2, d.box[1]))
        for i, d in enumerate(detections):
            chip = crops.face_chip(pixels, d.box, d.keypoints, d.roll, CHIP_SIZE)
            kps = None if d.keypoints is None else [(round(float(x) * inv, 2), round(float(y) * inv, 2))
                                                    for x, y in d.keypoints]
            x, y, w, h = d.box
            result.faces.append(self._judged(Face(index=i, box=Box(x=x * inv, y=y * inv, width=w * inv,
                                                                   height=h * inv),
                                                  score=d.score, keypoints=kps, quality=face_quality(d, chip, inv))))
            pending.inputs.append(FaceInput(chip=chip, padding=crops.CHIP_PADDING, image=whole, box=d.box,
                                            keypoints=d.keypoints))
        if isinstance(source, np.ndarray) and not decoded and self.channels == "rgb" and looks_bgr(pixels, detections):
            result.warnings.append(f"{name}: the faces look blue-tinted, as OpenCV's BGR arrays do when read as RGB; "
                                   "if this array comes from cv2, pass channels='bgr'")
            warnings.warn(result.warnings[-1], UserWarning, stacklevel=3)
        return pending

    def _judged(self, face: Face) -> Face:
        """``face`` marked weak with the reasons when it falls under ``min_quality``."""
        if self.min_quality is not None and face.quality is not None:
            face.weak = self.min_quality.failures(face.quality) or None
        return face

    # -- stage 2: one backend call for the faces of many images ---------------------------
    def predict(self, batch: list[Prepared], attributes: Sequence[str] | None = None) -> None:
        """Stage 2: one backend call for the faces of many prepared images; fills their results.

        ``attributes`` (a subset of the analyzer's) narrows what is asked for this batch: video asks
        for the person's attributes on fewer frames than for the emotion. Faces marked ``weak`` are not sent."""
        pairs = [(face, fi) for p in batch for face, fi in zip(p.result.faces, p.inputs) if not face.weak]
        if pairs and not self._predict_pairs(batch, pairs, attributes):
            return
        for p in batch:  # every face is described, weak ones too (a question may be about any person)
            if self.describer and p.inputs:
                self._describe(p)

    def _predict_pairs(self, batch: list[Prepared], pairs: list, attributes: Sequence[str] | None) -> bool:
        """The backend call for ``pairs`` of (face, input); False when it failed and the images were
        retried one by one (or given the error), which then did everything."""
        inputs = [fi for _, fi in pairs]
        wanted = self.attributes if attributes is None else [a for a in self.attributes if a in attributes]
        asked = [a for a in wanted if not (self._vlm_explains and a == "emotion")]
        try:
            predictions = self.backend.predict(inputs, asked) if asked else [{} for _ in inputs]
        except Exception as e:  # noqa: BLE001 - a backend failure is the images' error, not the run's
            if sum(1 for p in batch if p.inputs) > 1:  # one image's faces must not fail the others: retry alone
                for p in batch:
                    self.predict([p], attributes)
                return False
            for p in batch:
                if p.inputs:
                    p.result.error = f"{p.result.source}: backend {self.backend.name} failed: {e}"
            return False
        for (face, fi), prediction in zip(pairs, predictions):
            face.attributes = prediction
            if self.explainer:
                try:
                    self._explain(face, fi)
                except Exception as e:  # noqa: BLE001 - an explanation is extra: the attributes stand without it
                    face.explanation = f"no explanation: {type(e).__name__}: {e}"
        return True

    def _explain(self, face: Face, face_input: FaceInput) -> None:
        if self._vlm_explains:  # the VLM's chain of thought ends in this face's emotion
            from facescan.explain import explain_with_vlm

            face.explanation, emotion = explain_with_vlm(self.backend, face_input.chip)
            face.attributes = {**face.attributes, "emotion": emotion}
            face.action_units, _ = self.explainer.explain(face_input.chip, None, "fer7")
            face.attributes = {a: face.attributes[a] for a in self.attributes if a in face.attributes}
        else:
            emotion = face.attributes["emotion"]
            face.action_units, face.explanation = self.explainer.explain(face_input.chip, emotion.label,
                                                                         emotion.label_set)

    def _describe(self, pending: Prepared) -> None:
        inputs = pending.inputs
        try:
            found = self.describer.describe(inputs[0].image, [fi.box for fi in inputs], [fi.keypoints for fi in inputs])
        except Exception as e:  # descriptors are extra: the attributes stand without them
            for face in pending.result.faces:
                face.description = {"error": f"describe failed: {e}"}
            return
        inv = pending.result.width / inputs[0].image.shape[1] if pending.result.width else 1.0
        for face, d in zip(pending.result.faces, found):
            face.description = d.as_dict()
            if d.torso_box:
                face.description["torso_box"] = [round(v * inv, 1) for v in d.torso_box]

    def analyze(self, source: ImageSource) -> ImageResult:
        """Analyze one image (path, bytes, array or PIL image)."""
        return self.analyze_one(source).result

    def analyze_one(self, source: ImageSource, keep_image: bool = False) -> Analyzed:
        """Analyze one image; with ``keep_image`` the decoded photo comes back with the result."""
        return next(self.iter_analyzed([source], keep_images=keep_image))

    def analyze_many(self, sources: Iterable[ImageSource], workers: int = 1,
                     on_result: Callable[[ImageResult], None] | None = None,
                     executor: ThreadPoolExecutor | None = None) -> Iterator[ImageResult]:
        """Analyze many images in input order; a bad input yields a result with ``error`` set."""
        for analyzed in self.iter_analyzed(sources, workers, executor):
            if on_result:
                on_result(analyzed.result)
            yield analyzed.result

    def iter_analyzed(self, sources: Iterable[ImageSource], workers: int = 1,
                      executor: ThreadPoolExecutor | None = None, keep_images: bool = False) -> Iterator[Analyzed]:
        """Analyze many images in input order, each decoded once; ``keep_images`` returns the photos too.

        Images are loaded and detected on ``workers`` threads, or on ``executor`` (a long-lived
        pool, so per-thread detector graphs are built once, as the service does). The next chunk of
        images is loaded and detected while the model runs on the current one."""
        sources = iter(sources)
        own = executor is None and workers > 1
        # with one worker, the analyzer's own preparing thread: its detector graphs are built once
        pool = ThreadPoolExecutor(max_workers=workers) if own else executor or self._preparer()
        prepare = functools.partial(self.prepare, keep_image=keep_images)
        # kept photos stay in memory until their chunk is yielded, and two chunks are in memory at a time (the
        # one the model runs on and the next): fewer photos each (24-MP photos: ~0.3 GB each)
        most = min(self.batch_images, KEPT_IMAGES_PER_CHUNK // 2) if keep_images else self.batch_images
        # A chunk's face chips and the model's activations are what a run holds in memory, so a chunk is
        # sized to one backend batch of faces from the faces per photo seen so far (crowded photos: fewer
        # photos at a time), starting small: peak memory is then the same for 10 photos as for a million.
        face_batch = getattr(self.backend, "batch_size", None) or FACES_PER_CHUNK
        size, photos, faces = min(most, FIRST_CHUNK), 0, 0
        in_flight: list = []  # futures of the chunk being prepared, cancelled if the caller stops early

        def start(size: int) -> list:
            try:
                chunk = [s for _, s in zip(range(size), sources)]
            except Exception as e:  # noqa: BLE001 - the caller's iterator failed: raised after the chunk before
                failed = Future()
                failed.set_exception(e)
                return [failed]
            return [pool.submit(prepare, s) for s in chunk]

        try:
            in_flight = start(size)
            while in_flight:
                pending = [f.result() for f in in_flight]
                photos += len(pending)
                faces += sum(len(p.inputs) for p in pending)
                size = max(1, min(most, int(face_batch * photos / max(faces, photos))))
                in_flight = start(size)
                self.predict(pending)
                for p in pending:
                    p.result.seconds = round(time.perf_counter() - p.started, 4)
                    yield Analyzed(p.result, p.image)
        finally:
            for future in in_flight:
                future.cancel()
            if own:
                pool.shutdown(cancel_futures=True)

    def _preparer(self) -> ThreadPoolExecutor:
        """The one thread that loads and detects this analyzer's images when no pool is given (made on first use)."""
        if self._preparing is None:
            self._preparing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facescan-prepare")
        return self._preparing


def _part(value, module: str, name: str):
    """None for False, a new ``module.name()`` for True, else the given object."""
    if value is True:
        import importlib

        return getattr(importlib.import_module(module), name)()
    return value or None


def names_many(source) -> bool:
    """Whether ``source`` is a folder or a glob pattern (not a file, URL, base64 text or data URI)."""
    if not isinstance(source, (str, Path)) or is_url(str(source)) or str(source).startswith("data:"):
        return False
    try:
        path = Path(source)
        return path.is_dir() or (not path.exists() and any(c in str(source) for c in "*?["))
    except (OSError, ValueError):  # base64 text is not a usable file name
        return False


def analyze(images: ImageSource | Sequence[ImageSource], attributes: str | Sequence[str] | None = None,
            backend: str = "builtin", detector: str = "mediapipe", crops: bool = False,
            workers: int = 1, explain: bool = False, describe: bool = False,
            channels: str = "rgb") -> ImageResult | list[ImageResult]:
    """Analyze one image (returns an :class:`ImageResult`), or a list of images, a folder or a glob
    pattern (returns a list). An image is a path, an http(s) URL, bytes, base64 text or a data URI,
    a binary file object, a PIL image or a numpy array (``channels="bgr"`` for OpenCV's arrays)."""
    analyzer = Analyzer(backend=backend, detector=detector, attributes=attributes, crops=crops, explain=explain,
                        describe=describe, channels=channels)
    if names_many(images):
        images = expand_inputs([images])
    if isinstance(images, (list, tuple)):
        return list(analyzer.analyze_many(images, workers=workers))
    return analyzer.analyze(images)

