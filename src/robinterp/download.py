"""Downloading one published checkpoint over HTTP(S): resumable, and never an HTML page in its place.

`download_file(url, out)` streams into `<out>.part` and renames it onto `out` only when the
transfer is complete (the length the server announced) and the file starts as a torch.save file
does (zip `PK\\x03\\x04`, or the legacy pickle's `\\x80`). A transfer that breaks off keeps the
`.part`; the next call asks for the rest with an HTTP Range request and appends it (a server
that ignores Range sends the whole file again, which then replaces the `.part`).

Google Drive answers a large file with an HTML page first: a virus-scan warning whose download
form (or link) carries a confirmation, which is followed, as gdown 5.1.0 does (RobustBench's
files live there). Any other HTML page (the quota page "Too many users have viewed or downloaded
this file", a sign-in page) is refused with one line naming the URL and the manual fix, and
nothing of it is written.
"""

from __future__ import annotations

import html.parser
import re
import urllib.parse
from pathlib import Path

from .errors import RobinterpError
from .safe_unpickle import LEGACY_MAGIC, ZIP_MAGIC

CHUNK = 1 << 20  # bytes per write
TIMEOUT = 60  # seconds without data before the transfer counts as broken off
MAX_HOPS = 4  # HTML confirmation pages followed before giving up
MAX_PAGE = 4 << 20  # bytes of an HTML page read to find its confirmation
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) robinterp"  # Google Drive serves no confirmation to some clients


def part_path(out: str | Path) -> Path:
    """Where an unfinished download of `out` is kept between attempts."""
    out = Path(out)
    return out.with_name(out.name + ".part")


class _DriveConfirmation(html.parser.HTMLParser):
    """What a Google Drive warning page offers: its download form (action + hidden inputs), a
    download link, and the error line of a quota page."""

    def __init__(self):
        super().__init__()
        self.action, self.fields, self.link, self.error = None, {}, None, None
        self._in_error = self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == "download-form":
            self.action, self._in_form = a.get("action"), True
        elif tag == "input" and self._in_form and a.get("type") == "hidden" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "a" and self.link is None and "export=download" in (a.get("href") or ""):
            self.link = a["href"]
        elif tag == "p" and "uc-error-subcaption" in (a.get("class") or ""):
            self._in_error = True

    def handle_endtag(self, tag):
        self._in_form = self._in_form and tag != "form"
        self._in_error = self._in_error and tag != "p"

    def handle_data(self, data):
        if self._in_error and data.strip():
            self.error = (self.error or "") + data.strip()


def confirmation_url(page: str, page_url: str) -> tuple[str | None, str | None]:
    """(the URL a Google Drive warning page confirms the download with, or None; its error line)."""
    p = _DriveConfirmation()
    p.feed(page)
    if p.action:
        parts = urllib.parse.urlsplit(urllib.parse.urljoin(page_url, p.action))
        query = dict(urllib.parse.parse_qsl(parts.query)) | p.fields
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query))), p.error
    if p.link:
        return urllib.parse.urljoin(page_url, p.link), p.error
    m = re.search(r'"downloadUrl":"([^"]+)', page)
    if m:
        return m[1].replace("\\u003d", "=").replace("\\u0026", "&"), p.error
    return None, p.error


def _title(page: str) -> str:
    m = re.search(r"<title>(.*?)</title>", page, re.IGNORECASE | re.DOTALL)
    return f" titled {m[1].strip()[:80]!r}" if m else ""


def _is_html(response, first: bytes) -> bool:
    if response.headers.get("Content-Type", "").startswith("text/html"):
        return True
    head = first.lstrip()[:64].lower() if response.status_code != 206 else b""  # a 206 starts mid-file
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _expected_total(response, have: int) -> int | None:
    """The file's full length: Content-Range's total on a 206, Content-Length on a 200; -1 when
    the server sent another range than the one asked for."""
    if response.status_code == 206:
        m = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
        if not m or int(m[1]) != have:
            return -1
        return None if m[2] == "*" else int(m[2])
    length = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity") != "identity"  # the length is the encoded one
    return int(length) if length.isdigit() and not encoded else None


def _open(session, url: str, have: int, fix: str):
    """(response, its first chunk, the rest of its chunks) of the file, from byte `have` where the
    server resumes, after following Google Drive's confirmation pages; refuses any other HTML page."""
    for _ in range(MAX_HOPS):
        response = session.get(url, headers={"Range": f"bytes={have}-"} if have else {}, stream=True, timeout=TIMEOUT)
        if response.status_code == 416:  # nothing after byte `have`: the .part may be the whole file
            return response, b"", iter(())
        if response.status_code >= 400:
            raise RobinterpError(f"{url}: HTTP {response.status_code} {response.reason}; {fix}")
        chunks = response.iter_content(CHUNK)
        first = next(chunks, b"")
        if not _is_html(response, first):
            return response, first, chunks
        page = first
        for chunk in chunks:
            if len(page) > MAX_PAGE:
                break
            page += chunk
        response.close()
        page = page.decode("utf-8", "replace")
        nxt, error = confirmation_url(page, response.url)
        if nxt is None or error:
            what = f" ({error})" if error else ""
            raise RobinterpError(
                f"{url}: answered with an HTML page{_title(page)}{what}, not the file (Google Drive "
                f"shows one when the file's download quota is used up or it needs a sign-in); {fix}"
            )
        url = nxt
    raise RobinterpError(f"{url}: still an HTML page after {MAX_HOPS} confirmations; {fix}")


def download_file(url: str, out: str | Path, *, fix: str = "download it again", log=print) -> int:
    """Fetch `url` into `out` (resuming `<out>.part`); return the file's size in bytes.

    `fix` is the manual remedy that ends every error message (where to get the file by hand).
    """
    import requests

    out, part = Path(out), part_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        try:
            size = _transfer(session, url, part, have, fix, log)
        except requests.RequestException as e:  # connection dropped, reset or silent for TIMEOUT s
            got = part.stat().st_size if part.is_file() else 0
            raise RobinterpError(
                f"{url}: the transfer broke off after {got} bytes ({type(e).__name__}); run the "
                f"download again: it resumes from {part}"
            ) from None
    with open(part, "rb") as f:
        head = f.read(len(LEGACY_MAGIC))
    if not head.startswith((ZIP_MAGIC, LEGACY_MAGIC[:1])):
        part.unlink()
        raise RobinterpError(
            f"{url}: the file starts with {head[:8]!r}, not as a torch.save file (zip PK\\x03\\x04 or "
            f"a pickle's \\x80); it was deleted; {fix}"
        )
    part.replace(out)
    return size


def _transfer(session, url: str, part: Path, have: int, fix: str, log) -> int:
    response, first, chunks = _open(session, url, have, fix)
    if response.status_code == 416:
        total = re.fullmatch(r"bytes \*/(\d+)", response.headers.get("Content-Range", ""))
        if total and int(total[1]) == have:
            log(f"download: {part} already holds all {have} bytes")
            return have
        log(f"download: the server has nothing after byte {have} of {part}; starting again")
        part.unlink()
        return _transfer(session, url, part, 0, fix, log)
    total = _expected_total(response, have)
    if total == -1:
        log(f"download: the server answered another range than bytes {have}-; starting again")
        response.close()
        part.unlink()
        return _transfer(session, url, part, 0, fix, log)
    resumed = response.status_code == 206
    if have and not resumed:
        log(f"download: the server ignores Range requests; fetching all of {url} again")
    log(
        f"download: {url} -> {part} ({'resuming at byte ' + str(have) if resumed else 'from the start'}"
        f"{', ' + str(total) + ' bytes in all' if total else ''})"
    )
    with open(part, "ab" if resumed else "wb") as f:
        f.write(first)
        f.writelines(chunks)
    size = part.stat().st_size
    if total is not None and size != total:
        raise RobinterpError(
            f"{url}: the transfer broke off after {size} of {total} bytes; run the download "
            f"again: it resumes from {part}"
        )
    return size
