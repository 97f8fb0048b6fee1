"""Schemathesis hooks for .ci/schemathesis.sh.

- Images for the upload's `file` part: the document lists the accepted types in the part's
  `encoding.contentType`, and schemathesis asks a registered strategy for bytes of each type.
  The server decides a photo's type from its bytes, so random bytes are (rightly) a 415.
- Passwords: `current_password` (an email change, an account deletion) is the account's real
  password when the generated one is well formed; the fuzzer cannot know it.
- Accounts: one shared account for the run, and a throwaway account of its own for each
  `DELETE /users/me` and `POST /auth/logout-all` (else the first of them would leave every
  later request, and the whole stateful phase, which does not re-authenticate, on a dead
  token). A 401 elsewhere makes schemathesis fetch a new token.
- The documented example account (`ada` in the RegisterRequest / LoginRequest examples)
  exists, so the examples phase logs in with the documented example and gets a 200.
- Thumbnails: after each stored photo, the hook waits for its thumbnail job (a second at most
  here), so that links to `GET /photos/{id}/thumbnail` meet one that is ready.
- The client's half of a direct upload: the PUT of the bytes to the bucket's presigned URL,
  which is outside the API (no OpenAPI operation describes it), after each 201 of
  `POST /photos/uploads`, so `POST /photos/{id}/complete` has something to complete.
"""

import os
import struct
import time
import uuid
import zlib

import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.core.file_samples import FILE_SAMPLES

BASE_URL = os.environ["AISTORY_FUZZ_BASE_URL"]


def _png(width: int, height: int, pixels: bytes) -> bytes:
    """An RGB PNG of `width` x `height`, its rows filled from `pixels` (repeated)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row_bytes = width * 3
    raw = b"".join(b"\x00" + (pixels * (row_bytes // len(pixels) + 1))[:row_bytes] for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


schemathesis.openapi.media_type(
    "image/png",
    st.builds(_png, st.integers(1, 48), st.integers(1, 48), st.binary(min_size=3, max_size=48)),
)
schemathesis.openapi.media_type("image/jpeg", st.just(FILE_SAMPLES["jpg"]))
schemathesis.openapi.media_type("image/gif", st.just(FILE_SAMPLES["gif"]))
schemathesis.openapi.media_type("image/webp", st.just(FILE_SAMPLES["webp"]))


def _new_account() -> tuple[str, str]:
    """Registers a new account, logs it in, and returns its access token and password."""
    suffix = uuid.uuid4().hex[:16]
    account = {
        "username": f"fuzz{suffix}",
        "email": f"fuzz{suffix}@example.com",
        "password": f"fuzz password {suffix}",
    }
    registered = requests.post(f"{BASE_URL}/api/v1/auth/register", json=account, timeout=30)
    registered.raise_for_status()
    login = requests.post(
        f"{BASE_URL}/api/v1/auth/login",
        json={"username": account["username"], "password": account["password"]},
        timeout=30,
    )
    login.raise_for_status()
    return login.json()["access_token"], account["password"]


def _sign_in(case, account: tuple[str, str], prove: bool) -> None:
    """The account's token; with `prove`, its real password as a `current_password` that is
    a well-formed one (1-128 characters, no control characters) in the generated body: the
    fuzzer cannot know it. Malformed ones stay, so negative cases stay negative."""
    token, password = account
    case.headers = case.headers or {}
    case.headers["Authorization"] = f"Bearer {token}"
    body = case.body
    if not prove or not isinstance(body, dict):
        return
    current = body.get("current_password")
    if isinstance(current, str) and 1 <= len(current) <= 128 and not any(ord(c) < 32 or 127 <= ord(c) <= 159 for c in current):
        body["current_password"] = password


# The operations that end the account or all of its sessions.
_ENDING = ["DELETE /api/v1/users/me", "POST /api/v1/auth/logout-all"]


@schemathesis.auth(refresh_interval=None).apply_to(name=_ENDING)
class ThrowawayAccount:
    """Each account deletion (or logout everywhere) ends an account of its own."""

    def get(self, case, context):
        return _new_account()

    def set(self, case, data, context):
        _sign_in(case, data, prove=True)


@schemathesis.auth().skip_for(name=_ENDING)
class FreshAccount:
    """The run's shared account (a new one if its token stops working). Its password proves
    an email change, never a password change (that would end the shared session)."""

    def get(self, case, context):
        return _new_account()

    def set(self, case, data, context):
        changes_password = isinstance(case.body, dict) and "password" in case.body
        _sign_in(case, data, prove=case.operation.label == "PATCH /api/v1/users/me" and not changes_password)


_example = requests.post(
    f"{BASE_URL}/api/v1/auth/register",
    json={"username": "ada", "email": "ada@example.com", "password": "correct horse battery staple"},
    timeout=30,
)
assert _example.status_code in (201, 409), _example.text

_SAMPLES = {"image/jpeg": "jpg", "image/jpg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}


def _await_thumbnails(case, photo_id) -> None:
    """Waits (up to 10 s) for a new photo's thumbnail job, so that the links from it to
    `GET /photos/{id}/thumbnail` can be answered 200 (the job runs right after the upload)."""
    headers = {"Authorization": (case.headers or {}).get("Authorization", "")}
    for _ in range(100):
        photo = requests.get(f"{BASE_URL}/api/v1/photos/{photo_id}", headers=headers, timeout=30)
        if photo.status_code != 200 or photo.json().get("thumbnail_status") != "pending":
            return
        time.sleep(0.1)


@schemathesis.hook
def after_call(context, case, response):
    """Waits for a new photo's thumbnails; PUTs an image of the declared size to a direct
    upload's presigned URL."""
    stored = (case.operation.label, response.status_code) in (
        ("POST /api/v1/photos", 201),
        ("POST /api/v1/photos/{id}/complete", 200),
    )
    if stored:
        _await_thumbnails(case, response.json()["id"])
        return
    if case.operation.label != "POST /api/v1/photos/uploads" or response.status_code != 201:
        return
    upload = response.json()["upload"]
    headers = upload["headers"]
    size = int(headers["Content-Length"])
    sample = FILE_SAMPLES.get(_SAMPLES.get(headers.get("Content-Type", ""), ""), b"")
    # Padded to the declared size (trailing bytes after an image's end are ignored by readers).
    if sample and len(sample) <= size <= 1_000_000:
        requests.put(upload["url"], data=sample + bytes(size - len(sample)), headers=headers, timeout=30)


@schemathesis.hook
def filter_body(context, body):
    """Drops upload forms whose `title` reaches the server as one valid text part anyway.

    Every multipart part is text, so a title mutated to a number or a boolean reaches the
    server as the same text (an object as its JSON text), a list of one item as that item, and
    an empty list as no part at all: a valid upload that the negative_data_rejection check
    would then call "schema-violating data accepted". schemathesis already skips such
    wire-identical mutations for form-urlencoded bodies, not yet for multipart ones. Lists of
    two or more stay (two `title` parts, which the server refuses), and positive forms always
    pass this filter.
    """
    operation = context.operation
    if operation is None or operation.label != "POST /api/v1/photos" or not isinstance(body, dict):
        return True
    title = body.get("title")
    if isinstance(title, list):
        return len(title) >= 2
    return isinstance(title, (str, type(None)))
