"""Handler of ``media.thumbnail``: read an image (a URL or a file under the media root), shrink it.

It is the example of CPU-bound work in an ``async`` handler: the download is
I/O on the event loop, while decoding and resizing run in a thread
(``asyncio.to_thread``) so one large image does not stall the other tasks of
the consumer.

Sources are untrusted input, so they are bounded: downloads stop at
``media_max_source_bytes``, local paths must stay inside ``media_root`` (no
``..``, absolute paths or symlinks out of it), and anything Pillow cannot
decode — or that decodes to a decompression bomb — is ``Permanent``. The
thumbnail is written to a temporary file and renamed into place, so a retried
or interrupted attempt never leaves half an image behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
import secrets
from pathlib import Path, PurePath
from typing import Any

import aiohttp
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from examples.demo.settings import DemoSettings
from examples.demo.tasks import ThumbnailPayload, media_thumbnail
from warren import Permanent, TaskContext, handles

THUMBNAIL_DIR = "thumbnails"
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
SAVE_MODES = {
    "png": {"1", "L", "LA", "P", "RGB", "RGBA"},
    "jpeg": {"L", "RGB"},
    "webp": {"RGB", "RGBA"},
}
SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "png": {"optimize": True},
    "jpeg": {"quality": 85, "optimize": True},
    "webp": {"quality": 85},
}
# Decoders a source may use: common web/photo formats only, never e.g. EPS (Ghostscript).
SOURCE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that turn the image by 90 degrees
RETRYABLE_STATUSES = frozenset({408, 425, 429})
CHUNK_BYTES = 64 * 1024


class MediaSourceError(Exception):
    """The source could not be fetched this time (server error, network): retried."""


@handles(media_thumbnail)
async def thumbnail(payload: ThumbnailPayload, ctx: TaskContext) -> dict[str, Any]:
    """Write the thumbnail of ``payload.source``; return where, its size and its format."""
    settings: DemoSettings = ctx.settings
    root = settings.media_root.resolve()
    limit = settings.media_max_source_bytes
    if is_url(payload.source):
        await ctx.resources.check_destination(payload.source)
        data = await download(ctx.resources.http, payload.source, limit)
    else:
        data = await asyncio.to_thread(read_local, root, payload.source, limit)
    encoded, width, height = await asyncio.to_thread(
        render, data, (payload.width, payload.height), payload.format
    )
    target = root / THUMBNAIL_DIR / f"{ctx.task_id}.{EXTENSIONS[payload.format]}"
    await asyncio.to_thread(write_atomically, target, encoded)
    return {
        "path": target.relative_to(root).as_posix(),
        "width": width,
        "height": height,
        "format": payload.format,
    }


def is_url(source: str) -> bool:
    return source[:8].lower().startswith(("http://", "https://"))


# --- reading the source ----------------------------------------------------
async def download(http: aiohttp.ClientSession, url: str, limit: int) -> bytes:
    """The body at ``url``, refused (``Permanent``) beyond ``limit`` bytes."""
    try:
        async with http.get(url) as response:
            _check_status(response)
            if response.content_length is not None and response.content_length > limit:
                raise Permanent(f"source is {response.content_length} bytes, over {limit}")
            data = bytearray()
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                data += chunk
                if len(data) > limit:
                    raise Permanent(f"source is over {limit} bytes")
            return bytes(data)
    except (aiohttp.InvalidURL, aiohttp.TooManyRedirects) as exc:
        raise Permanent(f"cannot fetch the source: {type(exc).__name__}: {exc}") from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise MediaSourceError(f"download failed: {type(exc).__name__}: {exc}") from exc


def _check_status(response: aiohttp.ClientResponse) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    described = f"source answered {status} {response.reason or ''}".rstrip()
    if status in RETRYABLE_STATUSES or status >= 500:
        raise MediaSourceError(described)
    raise Permanent(described)


def read_local(root: Path, source: str, limit: int) -> bytes:
    """The bytes of ``source``, a path relative to ``root`` that must resolve inside it."""
    path = resolve_inside(root, source)
    if (size := path.stat().st_size) > limit:
        raise Permanent(f"source is {size} bytes, over {limit}")
    with path.open("rb") as file:
        data = file.read(limit + 1)  # the file may have grown since stat()
    if len(data) > limit:
        raise Permanent(f"source is over {limit} bytes")
    return data


def resolve_inside(root: Path, source: str) -> Path:
    """``root / source`` with symlinks resolved; ``Permanent`` unless a regular file in ``root``.

    ``root`` must already be resolved.
    """
    if not source or PurePath(source).is_absolute() or "\0" in source:
        raise Permanent(f"source {source!r} is not a path relative to the media root")
    try:
        path = (root / source).resolve(strict=True)
    except RuntimeError as exc:  # Python 3.11's report of a symlink loop
        raise Permanent(f"source {source!r} cannot be resolved: {exc}") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise Permanent(f"source {source!r} does not exist") from exc
        raise  # e.g. permission denied: an operator can fix that, so retry
    if not path.is_relative_to(root):
        raise Permanent(f"source {source!r} is outside the media root")
    if not path.is_file():
        raise Permanent(f"source {source!r} is not a regular file")
    return path


# --- the Pillow work (in a thread) ------------------------------------------
def render(data: bytes, box: tuple[int, int], fmt: str) -> tuple[bytes, int, int]:
    """The encoded thumbnail of ``data`` fitting ``box``, upright, and its size.

    Only metadata-free pixels are saved: no EXIF (GPS position, camera) leaks
    into a thumbnail.
    """
    upright = _decode_thumbnail(data, box)
    prepared = _for_format(upright, fmt)
    out = io.BytesIO()
    prepared.save(out, PIL_FORMATS[fmt], **SAVE_OPTIONS[fmt])
    return out.getvalue(), prepared.width, prepared.height


def _decode_thumbnail(data: bytes, box: tuple[int, int]) -> Image.Image:
    """Decode, fit into ``box``, turn upright; ``Permanent`` if ``data`` is no usable image."""
    try:
        with Image.open(io.BytesIO(data), formats=SOURCE_FORMATS) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data), formats=SOURCE_FORMATS) as image:
            if image.getexif().get(ExifTags.Base.Orientation, 1) in SWAPS_AXES:
                box = (box[1], box[0])  # the box applies to the upright image
            image.thumbnail(box)  # before transposing: lets JPEG decode at a reduced scale
            return ImageOps.exif_transpose(image)  # a new image, usable after close
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise Permanent(f"source is not a usable image: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt image data
        raise Permanent(f"source image is damaged: {type(exc).__name__}: {exc}") from exc


def _for_format(image: Image.Image, fmt: str) -> Image.Image:
    """``image`` in a mode ``fmt`` can store; transparency is flattened on white for JPEG."""
    if image.mode in SAVE_MODES[fmt]:
        return image
    if not image.has_transparency_data:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    if fmt != "jpeg":
        return rgba
    flat = Image.new("RGB", rgba.size, "white")
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file and a rename.

    The temporary file is created with the usual ``0o666 & ~umask`` permissions
    (``mkstemp`` would make it private), so whatever serves thumbnails can read it.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
