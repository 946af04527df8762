"""`consortium hash` hashes media locally exactly as the server's `POST hash/` does: the same JSON for
the same bytes (one implementation, consortium_client.media), and the reference PDQ of Meta's vectors."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

from tests.media.videos import write_video
from tests.signals.vectors import VECTORS, csv_rows, requires_vectors, requires_video


def server_hash(server: str, token: str, path: Path) -> dict[str, Any]:
    """What `POST hash/` answers for the file, over HTTP as a member's own code would send it."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{server}/api/v1/hash/", data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


def edited_images(folder: Path) -> list[Path]:
    """The kinds of edit variants are made with: a crop, a logo, a blur, a palette and a CMYK copy."""
    original = Image.open(VECTORS / "pdq" / "bridge-mods" / "aaa-orig.jpg").convert("RGB")
    edits = {
        "cropped.png": original.crop((20, 10, original.width - 30, original.height - 20)),
        "blurred.jpg": original.filter(ImageFilter.GaussianBlur(3)),
        "palette.gif": original.convert("P", palette=Image.Palette.ADAPTIVE),
        "cmyk.jpg": original.convert("CMYK"),
    }
    logo = original.copy()
    ImageDraw.Draw(logo).rectangle((10, 10, 90, 40), fill=(255, 0, 0))
    edits["logo.webp"] = logo
    paths = []
    for name, image in edits.items():
        path = folder / name
        image.save(path)
        paths.append(path)
    return paths


@requires_vectors
def test_hash_prints_what_post_hash_gives_for_images_reference_and_edited(cli, alice, server, tmp_path):
    references = {row["file"]: row["reference_pdq"] for row in csv_rows("bridge-mods")}
    files = [VECTORS / "pdq" / name for name in list(references)[:4]]
    files += [VECTORS / "pdq" / "modes" / name for name in ("CMYK.jpg", "P.png", "LA.png")]
    files += edited_images(tmp_path)

    done = cli(alice, "hash", *map(str, files))

    assert done.code == 0, done.stderr
    lines = done.lines
    assert [line["file"] for line in lines] == [str(f) for f in files]
    for path, line in zip(files, lines):
        assert line["signals"] == server_hash(server, alice.token, path)["signals"], path.name
    for path, line in zip(files[:4], lines):  # pdqhash is bit-exact with Meta's reference on these
        assert line["signals"][0]["value"] == references[path.relative_to(VECTORS / "pdq").as_posix()]


@requires_vectors
@requires_video
def test_hash_of_one_video_is_exactly_the_post_hash_answer(cli, alice, server):
    video = VECTORS / "vpdq" / "pattern-sd-grey-bar.mp4"

    done = cli(alice, "hash", str(video))

    assert done.code == 0, done.stderr
    assert done.json == server_hash(server, alice.token, video)  # the whole JSON, not only its signals
    assert done.json["signals"][0]["type"] == "vpdq" and len(done.json["signals"][0]["frames"]) == 206


def test_a_file_that_is_no_media_fails_with_the_servers_code_and_the_others_still_print(cli, alice, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    image = tmp_path / "grey.png"
    Image.new("RGB", (64, 48), (90, 100, 110)).save(image)

    done = cli(alice, "--json", "hash", str(text), str(image))

    assert done.code == 1
    assert done.error["code"] == "media_unreadable"
    [line] = done.lines
    assert line["file"] == str(image) and [s["type"] for s in line["signals"]] == ["pdq", "md5", "sha256"]



@requires_video
def test_hash_job_prints_exactly_what_hashing_here_prints(cli, alice, tmp_path, settings):
    settings.MEDIA_JOB_PAGE_FRAMES = 25  # the video's frames come in three pages; the command reads them all
    video = write_video(tmp_path / "clip.mp4", seconds=2, width=160, height=120)
    text = tmp_path / "notes.txt"
    text.write_text("not a video")

    on_server, here = cli(alice, "hash", "--job", str(video)), cli(alice, "hash", str(video))
    refused = cli(alice, "--json", "hash", "--job", str(text))

    assert on_server.code == 0, on_server.stderr
    assert on_server.json == here.json
    assert len(on_server.json["signals"][0]["frames"]) == 60
    assert (refused.code, refused.error["code"]) == (1, "media_unreadable")  # as for a file hashed here
