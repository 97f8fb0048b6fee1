"""A user's journey through the API with the client openapi-python-client generated.

Run by .ci/client-journey.sh with the generated package `aistory_client` on PYTHONPATH and
AISTORY_JOURNEY_BASE_URL set. Every call goes through the generated `api.*` modules and
`models`, except the two things such a client cannot do: the event stream (read with the
underlying httpx client, `client.get_httpx_client()`) and HEAD (the same). Each step prints
`ok <step>`; any surprise stops the run with the step's name and the last response.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import struct
import sys
import threading
import time
import traceback
import uuid
import zlib

import httpx
from aistory_client import AuthenticatedClient, Client
from aistory_client.api.auth import login, logout, refresh, register
from aistory_client.api.photos import (
    delete_photo,
    get_photo,
    list_photos,
    photo_content,
    photo_thumbnail,
    rename_photo,
    upload_photo,
)
from aistory_client.api.stories import get_story, photo_story, request_story
from aistory_client.api.users import delete_me, get_me
from aistory_client.models import (
    DeleteMeRequest,
    LoginRequest,
    PhotoPage,
    PhotoPublic,
    PhotoStatus,
    RefreshRequest,
    RegisterRequest,
    RenameRequest,
    StoryProvider,
    StoryPublic,
    StoryRequestBody,
    StyleName,
    ThumbnailSize,
    ThumbnailStatus,
    TokenResponse,
    UploadForm,
    UserPublic,
)
from aistory_client.types import UNSET, File, Response, Unset

BASE_URL = os.environ["AISTORY_JOURNEY_BASE_URL"]
EVENTS_TIMEOUT_SECS = 60

# A real 48x32 baseline JPEG (a colour gradient, no metadata), made once with Pillow.
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAUDBAQEAwUEBAQFBQUGBwwIBwcHBw8LCwkMEQ8SEhEPERETFhwXExQaFRER"
    "GCEYGh0dHx8fExciJCIeJBweHx7/2wBDAQUFBQcGBw4ICA4eFBEUHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4e"
    "Hh4eHh4eHh4eHh4eHh4eHh4eHh7/wAARCAAgADADASIAAhEBAxEB/8QAFgABAQEAAAAAAAAAAAAAAAAABQYI/8QAGBAA"
    "AgMAAAAAAAAAAAAAAAAAAAQFIjH/xAAXAQEBAQEAAAAAAAAAAAAAAAAFBwYI/8QAGREAAgMBAAAAAAAAAAAAAAAAAAUD"
    "ITFh/9oADAMBAAIRAxEAPwDNisVlRRWKypUKxWVFFYrKm8nZ9BljjLJdWKyoqrFZUp1YrKiqsVlQmdn0oixxlkurFZUU"
    "VisqVCsVlRRWKyoROz6URY4yyWVisqKKxWVKhWKyoorFZUJnZ9OIljjLJhWKyoorFZUqFYrKiisVlQidn0oixxlkurFZ"
    "UUVisqVCsVlRVWKyoRMz6URY4yz/2Q=="
)


class JourneyError(Exception):
    pass


# The last response any client of this run received (for the failure report).
last_response: httpx.Response | None = None
current_step = "start"


def begin(step: str) -> None:
    global current_step
    current_step = step


def ok(note: str = "") -> None:
    print(f"ok {current_step}{note}", flush=True)


def _remember(response: httpx.Response) -> None:
    global last_response
    last_response = response


def fail(message: str, response: Response | httpx.Response | None = None) -> None:
    raise JourneyError(message + ("\n" + describe(response) if response is not None else ""))


def describe(response: Response | httpx.Response) -> str:
    if isinstance(response, httpx.Response):
        head = f"{response.request.method} {response.request.url} -> {response.status_code}"
        try:
            body = response.content
        except httpx.ResponseNotRead:
            body = b"(streamed body not read)"
    else:
        # A generated Response keeps no request: it came from the last one sent.
        request = last_response.request if last_response is not None else None
        where = f"{request.method} {request.url}" if request is not None else "response"
        head = f"{where} -> {int(response.status_code)}"
        body = response.content
    headers = "".join(f"\n  {name}: {value}" for name, value in response.headers.items())
    try:
        text = body[:2000].decode("utf-8")
    except UnicodeDecodeError:
        text = repr(body[:200])  # bytes (an image): its start
    more = f"\n  ... ({len(body)} bytes in all)" if len(body) > 2000 else ""
    return f"{head}{headers}\n  body: {text}{more}"


def expect(response: Response, status: int, parsed_type: type | None = None):
    """`response.parsed` after checking the status and the type the document promised."""
    if response.status_code != status:
        fail(f"expected status {status}, got {int(response.status_code)}", response)
    if parsed_type is not None and not isinstance(response.parsed, parsed_type):
        fail(
            f"expected a parsed {parsed_type.__name__}, the generated client gave {type(response.parsed).__name__}",
            response,
        )
    return response.parsed


def check(condition: bool, message: str, response: Response | httpx.Response | None = None) -> None:
    if not condition:
        fail(message, response)


def png(width: int, height: int, pixels: bytes) -> bytes:
    """An RGB PNG of `width` x `height`, its rows filled from `pixels` (repeated)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row_bytes = width * 3
    raw = b"".join(b"\x00" + (pixels * (row_bytes // len(pixels) + 1))[:row_bytes] for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def clients(access_token: str | None = None):
    hooks = {"event_hooks": {"response": [_remember]}}
    timeout = httpx.Timeout(30.0)
    if access_token is None:
        return Client(base_url=BASE_URL, timeout=timeout, httpx_args=hooks)
    return AuthenticatedClient(base_url=BASE_URL, token=access_token, timeout=timeout, httpx_args=hooks)


def read_events(http: httpx.Client, path: str, photo_id: int, result: dict) -> None:
    """Follows the stream until a `completed` status (into result["events"]), or records why not."""
    events: list[dict] = []
    result["events"] = events
    try:
        with http.stream("GET", path, headers={"Accept": "text/event-stream"}) as stream:
            result["response"] = stream
            if stream.status_code != 200:
                stream.read()
                result["error"] = f"expected status 200, got {stream.status_code}"
                return
            content_type = stream.headers.get("content-type", "")
            if not content_type.startswith("text/event-stream"):
                stream.read()
                result["error"] = f"expected Content-Type text/event-stream, got {content_type!r}"
                return
            fields: dict[str, str] = {}
            for line in stream.iter_lines():
                if line.startswith(":"):
                    continue  # a comment (keep-alive)
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value[1:] if value.startswith(" ") else value
                    continue
                if not fields:
                    continue
                event = dict(fields)
                fields = {}
                events.append(event)
                if event.get("event") != "status":
                    result["error"] = f"expected only `status` events, got {event}"
                    return
                # The data is the photo as GET /photos/{id} gives it: parsed by the generated model.
                data = PhotoPublic.from_dict(json.loads(event.get("data", "null")))
                if data.id != photo_id:
                    result["error"] = f"a status event whose data is not photo {photo_id}: {event}"
                    return
                if data.status == PhotoStatus.FAILED:
                    result["error"] = f"the story failed: {event}"
                    return
                if data.status == PhotoStatus.COMPLETED:
                    result["done"] = True
                    return
            result["error"] = "the stream ended before a `completed` status"
    except Exception as error:  # reported by the main thread
        result["error"] = f"{type(error).__name__}: {error}"


def journey() -> None:
    suffix = uuid.uuid4().hex[:12]
    username = f"journey_{suffix}"
    password = f"journey password {suffix}"
    email = f"journey.{suffix}@example.com"
    anonymous = clients()

    begin("register")
    response = register.sync_detailed(
        client=anonymous, body=RegisterRequest(username=username, email=email, password=password)
    )
    user = expect(response, 201, UserPublic)
    check(user.username == username and user.email == email, "the new user is not the one registered", response)
    check(bool(response.headers.get("location")), "register's 201 has no Location header", response)
    ok()

    begin("log in")
    response = login.sync_detailed(client=anonymous, body=LoginRequest(username=username, password=password))
    tokens = expect(response, 200, TokenResponse)
    check(bool(tokens.access_token) and bool(tokens.refresh_token), "login gave no tokens", response)
    ok()

    begin("me")
    response = get_me.sync_detailed(client=clients(tokens.access_token))
    me = expect(response, 200, UserPublic)
    check(me.id == user.id and me.username == username, "/users/me is someone else", response)
    ok()

    begin("refresh")
    response = refresh.sync_detailed(client=anonymous, body=RefreshRequest(refresh_token=tokens.refresh_token))
    renewed = expect(response, 200, TokenResponse)
    check(renewed.refresh_token != tokens.refresh_token, "refresh handed back the same refresh token", response)
    auth = clients(renewed.access_token)
    response = get_me.sync_detailed(client=auth)
    check(expect(response, 200, UserPublic).id == user.id, "the refreshed access token is someone else", response)
    tokens = renewed
    ok()

    begin("upload jpeg")
    response = upload_photo.sync_detailed(
        client=auth,
        body=UploadForm(
            file=File(payload=io.BytesIO(JPEG), file_name="journey.jpg", mime_type="image/jpeg"),
            title="Journey",
        ),
    )
    photo = expect(response, 201, PhotoPublic)
    check(photo.status == PhotoStatus.UPLOADED, f"a new upload is {photo.status!r}, not uploaded", response)
    check(photo.content_type == "image/jpeg", f"content_type {photo.content_type!r}", response)
    check(photo.size_bytes == len(JPEG), f"size_bytes {photo.size_bytes!r}, uploaded {len(JPEG)}", response)
    check(photo.checksum_sha256 == hashlib.sha256(JPEG).hexdigest(), "checksum_sha256 is not the bytes'", response)
    uploaded = {photo.id}
    ok()

    begin("upload 24 png")
    for number in range(24):
        picture = png(4 + number, 3 + number % 5, bytes([number * 10 % 256, 255 - number, 90]))
        response = upload_photo.sync_detailed(
            client=auth,
            body=UploadForm(file=File(payload=io.BytesIO(picture), file_name=f"p{number}.png", mime_type="image/png")),
        )
        extra = expect(response, 201, PhotoPublic)
        check(extra.content_type == "image/png", f"content_type {extra.content_type!r}", response)
        uploaded.add(extra.id)
    check(len(uploaded) == 25, f"25 uploads gave {len(uploaded)} distinct ids")
    ok()

    begin("page through 25 photos")
    seen: list[int] = []
    cursor: str | Unset = UNSET
    pages = 0
    while True:
        response = list_photos.sync_detailed(client=auth, limit=10, cursor=cursor)
        page = expect(response, 200, PhotoPage)
        pages += 1
        check(len(page.items) <= 10, f"a page of {len(page.items)} items with limit=10", response)
        seen.extend(item.id for item in page.items)
        check(not isinstance(page.next_cursor, Unset), "a page without next_cursor (null on the last)", response)
        if page.next_cursor is None:
            break
        check(pages < 10, "more than 10 pages of 10 for 25 photos", response)
        cursor = page.next_cursor
    check(
        len(seen) == 25 and set(seen) == uploaded,
        f"paging gave {len(seen)} ids ({len(set(seen))} distinct) in {pages} pages, expected the 25 uploaded",
    )
    check(pages == 3, f"25 photos with limit=10 took {pages} pages, expected 3")
    ok()

    begin("get photo")
    response = get_photo.sync_detailed(photo.id, client=auth)
    got = expect(response, 200, PhotoPublic)
    check(got.id == photo.id and got.checksum_sha256 == photo.checksum_sha256, "a different photo", response)
    ok()

    begin("rename photo")
    response = rename_photo.sync_detailed(photo.id, client=auth, body=RenameRequest(title="Renamed by the journey"))
    check(expect(response, 200, PhotoPublic).title == "Renamed by the journey", "the title did not change", response)
    response = get_photo.sync_detailed(photo.id, client=auth)
    check(expect(response, 200, PhotoPublic).title == "Renamed by the journey", "the new title was not kept", response)
    ok()

    begin("download content")
    response = photo_content.sync_detailed(photo.id, client=auth)
    content = expect(response, 200, File)
    check(content.payload.read() == JPEG, "the downloaded bytes are not the uploaded JPEG", response)
    check(
        response.headers.get("content-type") == "image/jpeg",
        f"Content-Type {response.headers.get('content-type')!r}",
        response,
    )
    etag = response.headers.get("etag")
    check(etag == f'"{photo.checksum_sha256}"', f"ETag {etag!r}", response)
    ok()

    begin("conditional get (304)")
    response = photo_content.sync_detailed(photo.id, client=auth, if_none_match=etag)
    expect(response, 304)
    check(response.content == b"", "a 304 with a body", response)
    ok()

    begin("head content")
    head = auth.get_httpx_client().head(photo.content_url)
    check(head.status_code == 200, f"HEAD {photo.content_url}: expected 200, got {head.status_code}", head)
    check(head.content == b"", "HEAD answered with a body", head)
    check(
        head.headers.get("content-length") == str(len(JPEG)),
        f"HEAD Content-Length {head.headers.get('content-length')!r}, the file has {len(JPEG)}",
        head,
    )
    check(
        head.headers.get("content-type") == "image/jpeg",
        f"HEAD Content-Type {head.headers.get('content-type')!r}",
        head,
    )
    ok()

    begin("thumbnails")
    deadline = time.monotonic() + 30
    while True:
        got = expect(get_photo.sync_detailed(photo.id, client=auth), 200, PhotoPublic)
        if got.thumbnail_status != ThumbnailStatus.PENDING or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    check(got.thumbnail_status == ThumbnailStatus.READY, f"thumbnail_status {got.thumbnail_status!r} after 30 s")
    etags = set()
    for size in (UNSET, ThumbnailSize("256"), ThumbnailSize("1024")):
        response = photo_thumbnail.sync_detailed(photo.id, client=auth, size=size)
        thumbnail = expect(response, 200, File)
        check(thumbnail.payload.read()[:3] == b"\xff\xd8\xff", "a thumbnail that is not a JPEG", response)
        check(
            response.headers.get("cache-control") == "private, max-age=31536000, immutable",
            f"Cache-Control {response.headers.get('cache-control')!r}",
            response,
        )
        etags.add(response.headers.get("etag"))
        response = photo_thumbnail.sync_detailed(
            photo.id, client=auth, size=size, if_none_match=response.headers.get("etag")
        )
        expect(response, 304)
    check(len(etags) == 2, f"ETags {etags}: the default is 256, and each size has its own")
    ok()

    begin("request story")
    response = request_story.sync_detailed(
        photo.id, client=auth, body=StoryRequestBody(style=StyleName.BEDTIME, language="en")
    )
    queued = expect(response, 202, PhotoPublic)
    check(queued.id == photo.id, "the 202 is about another photo", response)
    check(queued.status == PhotoStatus.PROCESSING, f"a photo with a story asked for is {queued.status!r}", response)
    ok()

    begin("follow events until completed")
    result: dict = {}
    follower = threading.Thread(
        target=read_events,
        args=(auth.get_httpx_client(), f"/api/v1/photos/{photo.id}/events", photo.id, result),
        daemon=True,
    )
    started = time.monotonic()
    follower.start()
    follower.join(EVENTS_TIMEOUT_SECS)
    events = result.get("events", [])
    if follower.is_alive():
        fail(f"no `completed` status within {EVENTS_TIMEOUT_SECS} s; events so far: {events}")
    if not result.get("done"):
        stream = result.get("response")
        fail(f"{result.get('error', 'no result')}; events: {events}", stream)
    ids = [event.get("id") for event in events]
    check(all(ids) and len(set(ids)) == len(ids), f"event ids {ids}: each event needs an id of its own")
    ok(f" ({len(events)} events, {time.monotonic() - started:.1f} s)")

    begin("read story")
    response = photo_story.sync_detailed(photo.id, client=auth)
    story = expect(response, 200, StoryPublic)
    check(story.photo_id == photo.id and bool(story.body.strip()), "not a story of this photo", response)
    check(
        story.style == StyleName.BEDTIME and story.provider == StoryProvider.BUILTIN,
        "not the story asked for",
        response,
    )
    response = get_story.sync_detailed(story.id, client=auth)
    same = expect(response, 200, StoryPublic)
    check((same.id, same.title, same.body) == (story.id, story.title, story.body), "get_story differs", response)
    ok()

    begin("delete photo")
    response = delete_photo.sync_detailed(photo.id, client=auth)
    expect(response, 204)
    response = get_photo.sync_detailed(photo.id, client=auth)
    expect(response, 404)
    ok()

    begin("logout")
    response = logout.sync_detailed(client=anonymous, body=RefreshRequest(refresh_token=tokens.refresh_token))
    expect(response, 204)
    ok()

    begin("refresh refused after logout")
    response = refresh.sync_detailed(client=anonymous, body=RefreshRequest(refresh_token=tokens.refresh_token))
    expect(response, 401)
    ok()

    begin("log in again")
    response = login.sync_detailed(client=anonymous, body=LoginRequest(username=username, password=password))
    tokens = expect(response, 200, TokenResponse)
    auth = clients(tokens.access_token)
    ok()

    begin("delete account")
    response = delete_me.sync_detailed(client=auth, body=DeleteMeRequest(current_password=password))
    expect(response, 204)
    ok()

    begin("login refused after deletion")
    response = login.sync_detailed(client=anonymous, body=LoginRequest(username=username, password=password))
    expect(response, 401)
    ok()


def main() -> int:
    started = time.monotonic()
    try:
        journey()
    except JourneyError as error:
        print(f"FAILED at step {current_step!r}: {error}", file=sys.stderr)
        return 1
    except Exception:
        print(f"FAILED at step {current_step!r} with an exception:", file=sys.stderr)
        traceback.print_exc()
        if last_response is not None:
            print("last response: " + describe(last_response), file=sys.stderr)
        return 1
    print(f"ok journey ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
