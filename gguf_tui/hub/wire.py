"""Reading what the Hub sends: bodies with a size bound, JSON through one parser.

Every JSON document that comes from the network goes through `parse_json` or
`json_array_items`, so a broken or hostile server gets one clear error naming the endpoint
(never "maximum recursion depth exceeded"), and a long list is read item by item instead of
being held as one page of raw text and one tree of parsed objects.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from gguf_tui.hub.errors import HubError
from gguf_tui.textsafe import redact_url

MAX_JSON_BYTES = 32 * 1024 * 1024  # one non-list document (repo info); lists are streamed
MAX_ERROR_BYTES = 64 * 1024  # an error reply is only read for its message
MAX_ITEM_BYTES = 1024 * 1024  # one entry of a list (a tree entry is a few hundred bytes)
_READ_CHUNK = 64 * 1024
_WHITESPACE = " \t\r\n"
_decoder = json.JSONDecoder()


def endpoint_of(url: str) -> str:
    """The URL as it may be shown: no credentials, no query string (it can carry secrets)."""
    return redact_url(url)


def malformed(url: str, why: str) -> HubError:
    return HubError(
        f"the Hub sent malformed JSON for {endpoint_of(url)} ({why})", kind="bad_response"
    )


def parse_json(body: bytes, url: str) -> Any:
    """`body` parsed as JSON, or a HubError naming the endpoint when it is not usable JSON."""
    try:
        return json.loads(body)
    except RecursionError:
        raise malformed(url, "nested too deeply") from None
    except UnicodeDecodeError:
        raise malformed(url, "not UTF-8") from None
    except ValueError as exc:
        position = getattr(exc, "pos", None)
        where = f" at byte {position}" if isinstance(position, int) else ""
        raise malformed(url, f"not valid JSON{where}") from None


def try_parse_json(body: bytes) -> Any | None:
    """`body` parsed as JSON, or None (for error replies, where JSON is optional)."""
    try:
        return json.loads(body)
    except (RecursionError, ValueError):
        return None


async def read_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The response body, at most `limit` bytes (a longer one is an error, not a memory hog)."""
    if response.content_length is not None and response.content_length > limit:
        raise HubError(
            f"the Hub sent a reply of {response.content_length} bytes for "
            f"{endpoint_of(str(response.url))}, more than the {limit} expected",
            kind="bad_response",
        )
    body = bytearray()
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        body += chunk
        if len(body) > limit:
            raise HubError(
                f"the Hub sent a reply larger than {limit} bytes for "
                f"{endpoint_of(str(response.url))}",
                kind="bad_response",
            )
    return bytes(body)


async def json_array_items(
    response: aiohttp.ClientResponse, *, max_item_bytes: int = MAX_ITEM_BYTES
) -> AsyncIterator[Any]:
    """The items of a JSON array body, parsed one at a time as the bytes arrive.

    Only the text of the item being parsed is held, so memory does not grow with the length of
    the list; the caller may stop early (the connection is then dropped, not drained). A body
    that is not an array, an item over `max_item_bytes`, or broken JSON is a HubError.
    """
    url = str(response.url)
    chunks = response.content.iter_chunked(_READ_CHUNK)
    text_of = codecs.getincrementaldecoder("utf-8")()
    buffer = ""
    position = 0
    at_eof = False
    state = "start"  # start, then "first" item or "]", then "after" an item, "comma", "end"

    async def more() -> bool:
        """Read on; False once the end was already known (reaching it is news: parse again)."""
        nonlocal buffer, position, at_eof
        if at_eof:
            return False
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            at_eof = True
            chunk = b""
        try:
            text = text_of.decode(chunk, final=at_eof)
        except UnicodeDecodeError:
            raise malformed(url, "not UTF-8") from None
        buffer = buffer[position:] + text
        position = 0
        return True

    while True:
        while position < len(buffer) and buffer[position] in _WHITESPACE:
            position += 1
        if position >= len(buffer):
            if await more():
                continue
            if state == "end":
                return
            raise malformed(url, "the reply ends inside the list")
        char = buffer[position]
        if state == "end":
            raise malformed(url, "text after the end of the list")
        if state == "start":
            if char != "[":
                raise malformed(url, "expected a list")
            position += 1
            state = "first"
            continue
        if state == "first" and char == "]":
            position += 1
            state = "end"
            continue
        if state == "after":
            if char == ",":
                position += 1
                state = "comma"
            elif char == "]":
                position += 1
                state = "end"
            else:
                raise malformed(url, "expected ',' or ']' between list items")
            continue
        # state "first" or "comma": an item starts here.
        try:
            item, end = _decoder.raw_decode(buffer, position)
        except RecursionError:
            raise malformed(url, "nested too deeply") from None
        except ValueError:
            end = -1
            item = None
        # An item that reaches the end of the buffer may go on in the next chunk (a number).
        if end < 0 or (end >= len(buffer) and not at_eof):
            if len(buffer) - position > max_item_bytes:
                raise malformed(url, f"a list item longer than {max_item_bytes} bytes")
            if await more():
                continue
            raise malformed(url, "not valid JSON")
        position = end
        state = "after"
        yield item
