"""The request and response models, their OpenAPI docs, and reading one request (multipart or JSON).

Uploaded images stay in memory: the multipart parser here keeps files of any size the upload limit
allows in memory instead of spooling those over 1 MB to a temporary file, so nothing of an image
ever reaches the disk. (It is a subclass used by these routes only; Starlette's own parser is left
as it is.)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import re
import warnings
from typing import Any

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartParser

from facescan.ask import CHOOSERS
from facescan.schema import ImageResult

MAX_FORM_FIELDS = 10
FLAG_VALUES = {"true": True, "1": True, "on": True, "false": False, "0": False, "off": False, "": False}


class AnalyzeJSON(BaseModel):
    """``POST /v1/analyze`` as JSON."""

    image_base64: str = Field(description="The image file's bytes, base64-encoded (JPEG, PNG, WebP…).")
    attributes: list[str] | str | None = Field(None, description="Attributes; default age, gender, emotion. "
                                                                 "Race only when asked for.")
    backend: str | None = Field(None, description="One of the backends GET /v1/models lists.")
    describe: bool = False
    explain: bool = False


class AskJSON(AnalyzeJSON):
    """``POST /v1/ask`` as JSON."""

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


def _multipart_schema(extra: dict) -> dict:
    props = {"image": {"type": "string", "format": "binary", "description": "The photo."},
             "attributes": {"type": "string", "description": "Comma-separated attributes."},
             "backend": {"type": "string"}, "describe": {"type": "boolean"}, "explain": {"type": "boolean"},
             **extra}
    return {"type": "object", "properties": props, "required": ["image", *[k for k in extra if k == "question"]]}


def body_doc(json_model: type[BaseModel], extra: dict | None = None) -> dict:
    """``openapi_extra`` for a route that reads its body itself: multipart or ``json_model``."""
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": _multipart_schema(extra or {})},
        "application/json": {"schema": json_model.model_json_schema()},
    }}}


class InMemoryMultiPartParser(MultiPartParser):
    """Starlette's multipart parser with files kept in memory up to ``spool_max_size`` bytes."""

    def __init__(self, *args, spool_max_size: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.spool_max_size = spool_max_size  # this parser's files only; the class default stays 1 MB


def short(e: Exception) -> str:
    """An exception's message on one line, at most 300 characters."""
    return str(e).replace("\n", "; ")[:300]


async def read_request(request: Request, model: type[BaseModel], max_bytes: int) -> tuple[bytes, BaseModel]:
    """The image bytes and options of a multipart or JSON request (422 naming what is wrong)."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        return _read_json(await request.body(), model)
    if ctype.startswith("multipart/form-data"):
        form = await parse_form(request, max_bytes)
        try:
            return await _read_form(form, model)
        finally:
            await form.close()
    raise HTTPException(415, "send multipart/form-data (field 'image') or application/json (image_base64)")


def _read_json(raw: bytes, model: type[BaseModel]) -> tuple[bytes, BaseModel]:
    try:
        body = model.model_validate_json(raw)
    except Exception as e:  # pydantic's ValidationError or bad JSON
        raise HTTPException(422, f"invalid JSON body: {short(e)}") from None
    try:
        data = base64.b64decode(body.image_base64, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, "image_base64 is not valid base64") from None
    return data, body


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


async def _read_form(form: FormData, model: type[BaseModel]) -> tuple[bytes, BaseModel]:
    upload = form.get("image")
    if upload is None or isinstance(upload, str):
        raise HTTPException(422, "the form has no file field 'image'")
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
    return data, body


#: What a loader's message says when an image has too many pixels (a decompression bomb): 413, not 422.
TOO_MANY_PIXELS = re.compile(r"decompression bomb|pixel limit|too many pixels|exceeds limit", re.IGNORECASE)


def image_status(message: str) -> int:
    """413 when an image was refused for its pixel count (``message`` says so), else 422."""
    return 413 if TOO_MANY_PIXELS.search(message) else 422


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
