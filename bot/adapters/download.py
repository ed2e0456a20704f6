"""Reading a file a moderator sent from the platform's file server, never more than a set number of bytes.

Both adapters hand the engine an ``Upload`` whose ``read`` ends here, and the engine calls it only once it has
accepted the upload. The platform's stated size is checked before that; this bound holds even when a file turns
out larger than stated: reading stops one byte past the engine's limit, and the engine refuses what is too long.
"""

from __future__ import annotations

import httpx

from bot.core.uploads import MAX_ZIP_BYTES

DOWNLOAD_SECONDS = 60.0  # connect, and wait between two chunks; a file of a few MB arrives well within it


class DownloadFailed(ConnectionError):
    """The file could not be fetched; the message says why without the file's address (Telegram's carries the
    bot token)."""


async def read_upload(url: str) -> bytes:
    """An uploaded file, cut one byte past the largest upload the engine takes (so it can tell it was too large)."""
    return await read_at_most(url, MAX_ZIP_BYTES + 1)


async def read_at_most(url: str, most: int) -> bytes:
    """The file at ``url``, cut after ``most`` bytes; raises ``DownloadFailed`` when it can't be fetched."""
    problem = None
    try:
        # identity: a compressed body could unpack to far more than the bytes counted here
        async with httpx.AsyncClient(timeout=DOWNLOAD_SECONDS, headers={"Accept-Encoding": "identity"}) as client:
            async with client.stream("GET", url) as response:
                if response.status_code != httpx.codes.OK:
                    problem = f"the file server answered HTTP {response.status_code}"
                else:
                    return await _first_bytes(response, most)
    except httpx.HTTPError as error:  # its message may quote the address: only its kind is kept, nothing chained
        problem = f"the download failed ({type(error).__name__})"
    raise DownloadFailed(f"Could not fetch the file: {problem}.")


async def _first_bytes(response: httpx.Response, most: int) -> bytes:
    """At most ``most`` bytes of the body, read chunk by chunk; the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= most:
            break
    return b"".join(chunks)[:most]
