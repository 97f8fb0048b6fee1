"""Schemathesis hooks for .ci/schemathesis.sh.

- Images for the upload's `file` part: the document lists the accepted types in the part's
  `encoding.contentType`, and schemathesis asks a registered strategy for bytes of each type.
  The server decides a photo's type from its bytes, so random bytes are (rightly) a 415.
- A fresh account whenever the token stops working: `DELETE /users/me` is part of the run,
  and a 401 makes schemathesis fetch a new token (`retry_on` 401, the default).
"""

import os
import struct
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


@schemathesis.auth()
class FreshAccount:
    """Registers a new account and logs it in."""

    def get(self, case, context):
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
        return login.json()["access_token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


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
