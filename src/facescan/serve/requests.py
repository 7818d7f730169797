"""The request and response models, their OpenAPI docs, and reading one request (multipart or JSON).

Uploaded photos and clips stay in memory: the multipart parser here keeps files of any size the
upload limit allows in memory instead of spooling those over 1 MB to a temporary file, so nothing
of an upload ever reaches the disk. (It is a subclass used by these routes only; Starlette's own
parser is left as it is.)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import re
import warnings
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartParser

from facescan.ask import CHOOSERS
from facescan.schema import ImageResult

MAX_FORM_FIELDS = 10
FLAG_VALUES = {"true": True, "1": True, "on": True, "false": False, "0": False, "off": False, "": False}


class Options(BaseModel):
    """What every analysis request may choose."""

    attributes: list[str] | str | None = Field(None, description="Attributes; default age, gender, emotion. "
                                                                 "Race only when asked for.")
    backend: str | None = Field(None, description="One of the backends GET /v1/models lists.")
    describe: bool = Field(False, description="Person descriptors (photos only).")
    explain: bool = Field(False, description="Action units and an explanation of each expression (photos only).")
    min_quality: str | None = Field(None, max_length=200, description=(
        "Photos: faces under this floor are marked weak with the reasons and get no attributes, e.g. "
        "size=32,blur=40,yaw=60,outside=0.3 (shorter box side in px, sharpness, head turn in degrees, share "
        "of the box outside the photo)."))


#: A clip's sampling fields: in the JSON body and as multipart form fields (ignored for photos).
_SECONDS = {"ge": 0, "le": 86_400, "allow_inf_nan": False}


class AnalyzeJSON(Options):
    """``POST /v1/analyze`` as JSON: a photo (``image_base64``) or a clip (``video_base64``)."""

    image_base64: str | None = Field(None, description="A photo's bytes, base64-encoded (JPEG, PNG, WebP…).")
    video_base64: str | None = Field(None, description="Or a clip's bytes, base64-encoded (MP4, MOV, WebM, MKV, "
                                                       "AVI; within the clip limits of GET /v1/models).")
    fps: float | None = Field(None, gt=0, le=120, allow_inf_nan=False,
                              description="Clips: frames analyzed per second of video (default: the server's, 5).")
    every: int | None = Field(None, ge=1, le=1000, description="Clips: every n-th frame instead of fps.")
    start: float | None = Field(None, description="Clips: analyze from this second.", **_SECONDS)
    end: float | None = Field(None, description="Clips: analyze up to this second.", **_SECONDS)


class AskJSON(Options):
    """``POST /v1/ask`` as JSON."""

    image_base64: str = Field(description="The photo's bytes, base64-encoded (JPEG, PNG, WebP…).")
    question: str = Field(description='About one person, e.g. "How old is the man in the light blue shirt?"',
                          min_length=1, max_length=500)
    chooser: str = Field("descriptors", description="descriptors, or vlm (the backend picks a numbered box).")


class AskResponse(BaseModel):
    answer: dict[str, Any]
    result: ImageResult


class Problem(BaseModel):
    detail: str


ERRORS = {status: {"model": Problem} for status in (400, 401, 408, 411, 413, 415, 422, 429, 500, 503)}
ASK_FIELDS = {"question": {"type": "string", "minLength": 1, "maxLength": 500},
              "chooser": {"type": "string", "enum": list(CHOOSERS)}}
CLIP_FIELDS = {"video": {"type": "string", "format": "binary",
                         "description": "A clip instead of the photo (a clip sent as 'image' is recognized too)."},
               "fps": {"type": "number", "exclusiveMinimum": 0, "maximum": 120},
               "every": {"type": "integer", "minimum": 1, "maximum": 1000},
               "start": {"type": "number", "minimum": 0, "maximum": 86_400},
               "end": {"type": "number", "minimum": 0, "maximum": 86_400}}


def _multipart_schema(extra: dict, required: list[str]) -> dict:
    props = {"image": {"type": "string", "format": "binary", "description": "The photo."},
             "attributes": {"type": "string", "description": "Comma-separated attributes."},
             "backend": {"type": "string"}, "describe": {"type": "boolean"}, "explain": {"type": "boolean"},
             "min_quality": {"type": "string", "maxLength": 200}, **extra}
    return {"type": "object", "properties": props, "required": required}


def body_doc(json_model: type[BaseModel], extra: dict | None = None, required: tuple[str, ...] = ("image",)) -> dict:
    """``openapi_extra`` for a route that reads its body itself: multipart or ``json_model``."""
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": _multipart_schema(extra or {}, list(required))},
        "application/json": {"schema": json_model.model_json_schema()},
    }}}


@dataclass
class Upload:
    """One request's file: its bytes, and what the client said it is (name and type, when it said)."""

    data: bytes
    filename: str | None = None
    content_type: str | None = None
    field: str = "image"  # the form field or JSON key it came in: image or video


class InMemoryMultiPartParser(MultiPartParser):
    """Starlette's multipart parser with files kept in memory up to ``spool_max_size`` bytes."""

    def __init__(self, *args, spool_max_size: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.spool_max_size = spool_max_size  # this parser's files only; the class default stays 1 MB


def short(e: Exception) -> str:
    """An exception's message on one line, at most 300 characters."""
    return str(e).replace("\n", "; ")[:300]


async def read_request(request: Request, model: type[BaseModel], max_bytes: int,
                       files: tuple[str, ...] = ("image",)) -> tuple[Upload, BaseModel]:
    """The upload and options of a multipart or JSON request (422 naming what is wrong); ``files``
    are the form fields (and, with ``_base64``, the JSON keys) a file may come in."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        return _read_json(await request.body(), model, files)
    if ctype.startswith("multipart/form-data"):
        form = await parse_form(request, max_bytes)
        try:
            return await _read_form(form, model, files)
        finally:
            await form.close()
    raise HTTPException(415, f"send multipart/form-data (field {' or '.join(map(repr, files))}) or "
                             f"application/json ({' or '.join(f + '_base64' for f in files)})")


def _read_json(raw: bytes, model: type[BaseModel], files: tuple[str, ...]) -> tuple[Upload, BaseModel]:
    try:
        body = model.model_validate_json(raw)
    except Exception as e:  # pydantic's ValidationError or bad JSON
        raise HTTPException(422, f"invalid JSON body: {short(e)}") from None
    given = [f for f in files if getattr(body, f"{f}_base64", None) is not None]
    if len(given) != 1:
        keys = " or ".join(f"{f}_base64" for f in files)
        raise HTTPException(422, f"give {keys}" if not given else f"give {keys}, not both")
    try:
        data = base64.b64decode(getattr(body, f"{given[0]}_base64"), validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, f"{given[0]}_base64 is not valid base64") from None
    return Upload(data, field=given[0]), body


async def parse_form(request: Request, max_bytes: int) -> FormData:
    """The multipart form, parsed as ``Request.form()`` does but with every file kept in memory."""
    # ``max_bytes`` bounds the whole body (RequestGuard counts the bytes received, chunked or not), so
    # a file of up to that size plus a margin never rolls over to a temporary file.
    try:
        async with contextlib.aclosing(request.stream()) as stream:
            parser = InMemoryMultiPartParser(request.headers, stream, max_files=1, max_fields=MAX_FORM_FIELDS,
                                             spool_max_size=max_bytes + 1024 * 1024)
            return await parser.parse()
    except Exception as e:  # malformed multipart (MultiPartException, a missing boundary…)
        raise HTTPException(422, f"malformed multipart body: {short(e)}") from None


async def _read_form(form: FormData, model: type[BaseModel], files: tuple[str, ...]) -> tuple[Upload, BaseModel]:
    name = next((f for f in files if f in form), files[0])
    upload = form.get(name)
    if upload is None or isinstance(upload, str):
        raise HTTPException(422, f"the form has no file field {' or '.join(map(repr, files))}")
    data = await upload.read()
    fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    for flag in ("describe", "explain"):
        if flag in fields:
            value = fields[flag].strip().lower()
            if value not in FLAG_VALUES:
                raise HTTPException(422, f"{flag} must be true or false, not {fields[flag]!r}")
            fields[flag] = FLAG_VALUES[value]
    try:
        body = model.model_validate({**fields, "image_base64": ""})
    except Exception as e:
        raise HTTPException(422, f"invalid form fields: {short(e)}") from None
    return Upload(data, upload.filename, upload.content_type, name), body


#: What a loader's message says when an image has too many pixels (a decompression bomb): 413, not 422.
TOO_MANY_PIXELS = re.compile(r"decompression bomb|pixel limit|too many pixels|exceeds limit", re.IGNORECASE)


def image_status(message: str) -> int:
    """413 when an image was refused for its pixel count (``message`` says so), else 422."""
    return 413 if TOO_MANY_PIXELS.search(message) else 422


def upload_message(text: str) -> str:
    """A loader's message about an in-memory upload (``<N bytes>: …``) as ``upload (N bytes): …``."""
    return re.sub(r"^<(\d+) bytes>", r"upload (\1 bytes)", text)


def check_image(data: bytes, max_pixels: int) -> None:
    """Reject what is not an image (422) or has too many pixels (413) before it is queued."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise HTTPException(422, "the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the pixel count is checked below
            with Image.open(io.BytesIO(data)) as img:  # reads the header only
                width, height = img.size
    except UnidentifiedImageError:
        raise HTTPException(422, "the upload is not a recognized image format (JPEG, PNG, WebP, BMP, "
                                 "TIFF, GIF…)") from None
    except Image.DecompressionBombError as e:  # over twice Pillow's own pixel limit
        raise HTTPException(413, f"refused as a decompression bomb: {short(e)}") from None
    except Exception as e:  # noqa: BLE001 - a header PIL cannot parse
        message = short(e)
        raise HTTPException(image_status(message), f"the image header cannot be read: {message}") from None
    if width * height > max_pixels:
        raise HTTPException(413, f"{width}x{height} = {width * height:,} pixels is over the "
                                 f"{max_pixels:,} pixel limit")
