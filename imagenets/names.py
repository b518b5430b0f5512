"""Names we did not choose (files on disk, zip entries, list lines): shown safely, and checked to stay inside.

Every such name that reaches a message goes through :func:`shown`; every relative path read from a list
or an archive goes through :func:`relative_path_problem` before it is joined to a folder.
"""

from __future__ import annotations

import html
import re

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_DRIVE = re.compile(r"^[A-Za-z]:")


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shown(text: object) -> str:
    """``text`` with every character that is not printable written as an escape (``\\n``, ``\\x1b``,
    ``\\u202e``...): a name cannot break a message's line, forge another, reorder it (bidi overrides)
    or fail to print (undecodable bytes kept as surrogates)."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def shown_html(text: object) -> str:
    """:func:`shown`, then escaped for HTML: how every page we write (the report, the gallery) shows a name,
    so that neither markup nor a bidi override in a class or file name reaches the page raw."""
    return html.escape(shown(text))


def relative_path_problem(name: str) -> str:
    """Why ``name`` (``/``-separated) is not a path that stays inside the folder it is joined to, as a
    noun phrase; ``""`` when it is fine."""
    if not name:
        return "an empty name"
    if "\\" in name or "\0" in name:
        return "a backslash or NUL in the name"
    if name.startswith("/") or _DRIVE.match(name):
        return "an absolute path"
    if ".." in name.split("/"):
        return "a '..' component"
    return ""
