"""The bounds every request is held to, in one place; Envoy's configuration repeats the byte limits.

A request over a bound is refused before any work is done for it: over the byte limits by the
transport (RESOURCE_EXHAUSTED), over a field bound as INVALID_ARGUMENT naming the field. Errors
repeat at most a short prefix of what was sent, and name only the first few fields, so that no
reply can outgrow the headers Envoy accepts (a reply over them resets the connection every
caller shares).
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""A request message, encoded (gRPC's own default; Envoy's buffer limit matches)."""
MAX_HEADER_BYTES = 16 * 1024
"""All request headers together (Envoy's `max_request_headers_kb: 16`)."""
MAX_STRING_CHARS = 4096
"""Any string field of a request; fields with a stricter rule (names, decimals) check their own."""
MAX_REPEATED = 10_000
"""Elements of any repeated or map field of a request."""
MAX_DECIMAL_CHARS = 64
"""A decimal string, before it is parsed (38 digits, a sign, a point and an exponent fit)."""
MAX_ECHO_CHARS = 40
"""How much of a bad value an error message repeats."""
MAX_DESCRIPTION_CHARS = 240
"""One field violation's description, and its field path."""
MAX_VIOLATIONS = 10
"""Field violations named in one error; the rest are counted."""
MAX_MESSAGE_CHARS = 1024
"""The message of any error status."""


def echo(value: str) -> str:
    """Return a bad value quoted for an error message: its first characters, and its length."""
    if len(value) <= MAX_ECHO_CHARS:
        return repr(value)
    return f"{value[:MAX_ECHO_CHARS]!r}... ({len(value)} characters)"


def clip(text: str, limit: int) -> str:
    """Return `text` cut to `limit` characters, marked when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def oversized_field(message: Message, path: str = "") -> tuple[str, str] | None:
    """Return (field path, why) of the first string or repeated field over its bound, or None."""
    for field, value in message.ListFields():
        name = f"{path}{field.name}"
        repeated = field.is_repeated
        if repeated and len(value) > MAX_REPEATED:
            return name, f"has {len(value)} elements, at most {MAX_REPEATED}"
        if field.type == FieldDescriptor.TYPE_STRING:
            for index, text in enumerate(value if repeated else (value,)):
                if len(text) > MAX_STRING_CHARS:
                    where = f"{name}[{index}]" if repeated else name
                    return where, f"is longer than {MAX_STRING_CHARS} characters"
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                items = value.items()
                for key, item in items:
                    if isinstance(key, str) and len(key) > MAX_STRING_CHARS:
                        return (
                            f"{name}[...]",
                            f"has a key longer than {MAX_STRING_CHARS} characters",
                        )
                    if isinstance(item, Message):
                        found = oversized_field(item, f"{name}[{echo(str(key))}].")
                        if found is not None:
                            return found
                    elif isinstance(item, str) and len(item) > MAX_STRING_CHARS:
                        return f"{name}[{echo(str(key))}]", (
                            f"is longer than {MAX_STRING_CHARS} characters"
                        )
                continue
            for index, item in enumerate(value if repeated else (value,)):
                found = oversized_field(item, f"{name}[{index}]." if repeated else f"{name}.")
                if found is not None:
                    return found
    return None
