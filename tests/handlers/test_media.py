"""``media.thumbnail`` on real images: files under a temporary media root, and over local HTTP.

What a user relies on: a thumbnail in the box, upright and in the asked
format, written whole; and that nothing outside the media root, no
non-image and no oversized source is ever processed.
"""

from __future__ import annotations

import io
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import ExifTags, Image

from examples.demo.handlers.media import MediaSourceError, thumbnail
from examples.demo.settings import DemoSettings
from examples.demo.tasks import ThumbnailPayload
from warren.consumers.context import Resources, TaskContext
from warren.service.errors import Permanent

MAX_BYTES = 200_000


def image_bytes(size: tuple[int, int], fmt: str = "PNG", mode: str = "RGB", **save: Any) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "orange").save(out, fmt, **save)
    return out.getvalue()


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "wide.png").write_bytes(image_bytes((400, 200)))
    return root


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    shared = Resources(allow_private=True)  # the receivers run on this machine
    yield shared
    await shared.close()


def make_ctx(resources: Resources, media_root: Path) -> TaskContext:
    return TaskContext(
        task_id=uuid4().hex,
        type="media.thumbnail",
        queue="media",
        attempt=1,
        max_attempts=3,
        trace_id=None,
        redelivered=False,
        worker="test",
        settings=DemoSettings(media_root=media_root, media_max_source_bytes=MAX_BYTES),
        resources=resources,
    )


async def make_thumbnail(
    source: str, media_root: Path, resources: Resources, **options: Any
) -> tuple[dict[str, Any], TaskContext]:
    ctx = make_ctx(resources, media_root)
    payload = ThumbnailPayload.model_validate({"source": source, **options})
    return await thumbnail.fn(payload, ctx), ctx


# --- local sources -----------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "ext", "pil_format"),
    [("png", "png", "PNG"), ("jpeg", "jpg", "JPEG"), ("webp", "webp", "WEBP")],
)
async def test_thumbnail_fits_the_box_in_the_asked_format(
    media_root: Path, resources: Resources, fmt: str, ext: str, pil_format: str
) -> None:
    result, ctx = await make_thumbnail(
        "photos/wide.png", media_root, resources, width=100, height=100, format=fmt
    )

    assert result == {
        "path": f"thumbnails/{ctx.task_id}.{ext}",
        "width": 100,
        "height": 50,
        "format": fmt,
    }
    with Image.open(media_root / result["path"]) as written:
        assert written.format == pil_format
        assert written.size == (100, 50)
    assert os.listdir(media_root / "thumbnails") == [f"{ctx.task_id}.{ext}"]  # no temp file


async def test_transparency_becomes_white_in_a_jpeg(media_root: Path, resources: Resources) -> None:
    Image.new("RGBA", (50, 50), (0, 0, 0, 0)).save(media_root / "clear.png")

    result, _ = await make_thumbnail("clear.png", media_root, resources, format="jpeg")

    with Image.open(media_root / result["path"]) as written:
        assert written.mode == "RGB"
        red, green, blue = written.getpixel((25, 25))  # type: ignore[misc]
        assert min(red, green, blue) > 240


async def test_exif_orientation_is_applied_and_metadata_dropped(
    media_root: Path, resources: Resources
) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored sideways: upright it is 100 wide, 200 high
    exif[ExifTags.Base.Make] = "PrivateCam"
    (media_root / "phone.jpg").write_bytes(image_bytes((200, 100), "JPEG", exif=exif))

    result, _ = await make_thumbnail("phone.jpg", media_root, resources, width=64, height=64)

    assert (result["width"], result["height"]) == (32, 64)
    with Image.open(media_root / result["path"]) as written:
        assert written.size == (32, 64)
        assert dict(written.getexif()) == {}


@pytest.mark.parametrize("source", ["../outside.png", "photos/../../outside.png", "escape.png"])
async def test_sources_outside_the_media_root_are_refused(
    media_root: Path, resources: Resources, source: str
) -> None:
    outside = media_root.parent / "outside.png"
    outside.write_bytes(image_bytes((10, 10)))
    (media_root / "escape.png").symlink_to(outside)

    with pytest.raises(Permanent, match="outside the media root"):
        await make_thumbnail(source, media_root, resources)
    assert not (media_root / "thumbnails").exists()


async def test_absolute_paths_are_refused(media_root: Path, resources: Resources) -> None:
    inside = str((media_root / "photos" / "wide.png").resolve())

    with pytest.raises(Permanent, match="not a path relative to the media root"):
        await make_thumbnail(inside, media_root, resources)


@pytest.mark.parametrize(
    ("source", "message"),
    [("photos/missing.png", "does not exist"), ("photos", "not a regular file")],
)
async def test_missing_sources_are_permanent(
    media_root: Path, resources: Resources, source: str, message: str
) -> None:
    with pytest.raises(Permanent, match=message):
        await make_thumbnail(source, media_root, resources)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"just some text, not an image\n", "not a usable image"),
        (image_bytes((300, 300))[:400], "damaged"),  # a truncated PNG
    ],
)
async def test_non_images_are_permanent(
    media_root: Path, resources: Resources, content: bytes, message: str
) -> None:
    (media_root / "bad.png").write_bytes(content)

    with pytest.raises(Permanent, match=message):
        await make_thumbnail("bad.png", media_root, resources)


async def test_decompression_bombs_are_permanent(
    media_root: Path, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # wide.png has 80,000 pixels

    with pytest.raises(Permanent, match="not a usable image"):
        await make_thumbnail("photos/wide.png", media_root, resources)


async def test_oversized_local_files_are_permanent(media_root: Path, resources: Resources) -> None:
    (media_root / "huge.bmp").write_bytes(image_bytes((400, 400), "BMP"))  # 480 KB

    with pytest.raises(Permanent, match="over 200000"):
        await make_thumbnail("huge.bmp", media_root, resources)


# --- sources over HTTP -------------------------------------------------------
@dataclass
class ImageHost:
    """Serves ``/<name>`` from ``files``; ``/status/<code>``; ``/stream/<n>`` (chunked)."""

    files: dict[str, bytes] = field(default_factory=dict)

    async def file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.files:
            raise web.HTTPNotFound()
        return web.Response(body=self.files[name], content_type="image/png")

    async def status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="nope")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()  # no Content-Length: only counting can stop it
        await response.prepare(request)
        for _ in range(int(request.match_info["n"])):
            await response.write(b"\0" * 65536)
        await response.write_eof()
        return response


@pytest.fixture
async def image_host() -> AsyncIterator[tuple[ImageHost, str]]:
    host = ImageHost()
    app = web.Application()
    app.router.add_get("/status/{code}", host.status)
    app.router.add_get("/stream/{n}", host.stream)
    app.router.add_get("/{name}", host.file)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield host, str(server.make_url("/"))
    await server.close()


async def test_downloaded_source(
    image_host: tuple[ImageHost, str], media_root: Path, resources: Resources
) -> None:
    host, base = image_host
    host.files["tall.png"] = image_bytes((60, 240))

    result, ctx = await make_thumbnail(f"{base}tall.png", media_root, resources, format="webp")

    assert (result["width"], result["height"]) == (32, 128)
    with Image.open(media_root / f"thumbnails/{ctx.task_id}.webp") as written:
        assert (written.format, written.size) == ("WEBP", (32, 128))


@pytest.mark.parametrize(
    ("path", "message"),
    [("big.bmp", "480054 bytes, over 200000"), ("stream/8", "over 200000 bytes")],
)
async def test_oversized_downloads_are_permanent(
    image_host: tuple[ImageHost, str],
    media_root: Path,
    resources: Resources,
    path: str,
    message: str,
) -> None:
    host, base = image_host
    host.files["big.bmp"] = image_bytes((400, 400), "BMP")

    with pytest.raises(Permanent, match=message):
        await make_thumbnail(f"{base}{path}", media_root, resources)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("missing.png", Permanent),
        ("status/403", Permanent),
        ("status/500", MediaSourceError),
        ("status/429", MediaSourceError),
    ],
)
async def test_download_status_decides_permanent_or_retry(
    image_host: tuple[ImageHost, str],
    media_root: Path,
    resources: Resources,
    path: str,
    expected: type[Exception],
) -> None:
    _, base = image_host

    with pytest.raises(expected, match="source answered"):
        await make_thumbnail(f"{base}{path}", media_root, resources)


async def test_unreachable_host_is_retryable(media_root: Path, resources: Resources) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(MediaSourceError, match="download failed"):
        await make_thumbnail(f"http://127.0.0.1:{port}/x.png", media_root, resources)
