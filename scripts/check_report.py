#!/usr/bin/env python3
"""Render a Snakemake report in headless chromium; fail on a blank page or broken images.

    python scripts/check_report.py results/demo/report.html [--expect digits --expect FID]

Three checks, each in a real browser (Debian's `chromium`, fresh profile, no network):
1. the page's DOM after its scripts ran holds visible text (and every --expect string);
2. a screenshot of it is not blank (more than a handful of distinct colours);
3. every image embedded in the report (`var results = {...}`, `data_uri`) decodes in the
   browser (naturalWidth > 0), checked on a generated page holding all of them.
Exit status 0 = fine, 1 = a check failed, 2 = chromium missing or the file unreadable.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


class ReportError(Exception):
    """A check failed: the message says which and why."""


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def _chromium(browser: str, url: str, extra: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", *extra, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def rendered_dom(browser: str, path: Path, timeout: float = 120) -> str:
    res = _chromium(browser, path.resolve().as_uri(), ["--dump-dom"], timeout)
    if res.returncode != 0 or not res.stdout.strip():
        raise ReportError(f"chromium could not render {path} (exit {res.returncode}): {res.stderr[-500:]}")
    return res.stdout


def visible_text(dom: str) -> str:
    dom = re.sub(r"(?is)<(script|style|noscript|template)\b.*?</\1>", " ", dom)
    return " ".join(html.unescape(re.sub(r"(?s)<[^>]+>", " ", dom)).split())


def screenshot_colours(browser: str, path: Path, timeout: float = 120) -> int:
    """Number of distinct colours in a 1280x900 screenshot of the page."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp) / "shot.png"
        res = _chromium(browser, path.resolve().as_uri(), [f"--screenshot={shot}", "--window-size=1280,900"], timeout)
        if not shot.is_file():
            raise ReportError(f"chromium wrote no screenshot of {path} (exit {res.returncode}): {res.stderr[-500:]}")
        with Image.open(shot) as img:
            return len(img.convert("RGB").getcolors(maxcolors=1 << 24) or [])


def embedded_images(report_html: str) -> dict[str, str]:
    """{name: data URI} of every image result in a Snakemake report."""
    found = re.search(r"var results = (?=\{)", report_html)
    if found is None:
        return {}
    results, _ = json.JSONDecoder().raw_decode(report_html, found.end())
    return {
        name: r["data_uri"]
        for name, r in results.items()
        if str(r.get("mime_type", "")).startswith("image/") and r.get("data_uri")
    }


def broken_images(browser: str, images: dict[str, str], timeout: float = 120) -> list[str]:
    """Names of images the browser cannot decode (checked on one generated page)."""
    if not images:
        return []
    tags = "\n".join(
        f'<img id="i{i}" data-name="{html.escape(name)}" src="{uri}">' for i, (name, uri) in enumerate(images.items())
    )
    script = (
        "<script>window.addEventListener('load', () => { for (const img of document.images) "
        "img.setAttribute('data-ok', img.complete && img.naturalWidth > 0 ? 'yes' : 'no'); "
        "document.body.setAttribute('data-done', 'yes'); });</script>"
    )
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "images.html"
        page.write_text(f"<!doctype html><html><body>{tags}{script}</body></html>")
        dom = rendered_dom(browser, page, timeout)
    if 'data-done="yes"' not in dom:
        raise ReportError("the image check page never finished loading")
    states = dict(re.findall(r'data-name="([^"]*)"[^>]*data-ok="(yes|no)"', dom))
    return [name for name in images if states.get(html.escape(name)) != "yes"]


def check_report(path: Path, expect: list[str] = (), browser: str | None = None) -> dict:
    """Run every check; raise ReportError on the first failure, else return what was seen."""
    browser = browser or find_chromium()
    if browser is None:
        raise FileNotFoundError(
            f"no chromium found (looked for {', '.join(CHROMIUM_NAMES)}); install it with `apt-get install -y chromium`"
        )
    report_html = Path(path).read_text(errors="replace")
    text = visible_text(rendered_dom(browser, Path(path)))
    if len(text) < 20:
        raise ReportError(f"{path}: blank page (visible text after rendering: {text!r})")
    if re.search(r"var results = \{", report_html):  # a Snakemake report: its app must have got past "Loading..."
        expect = ["Results", *expect]
    missing = [e for e in expect if e not in text]
    if missing:
        raise ReportError(f"{path}: rendered page lacks {missing}")
    colours = screenshot_colours(browser, Path(path))
    if colours < 8:
        raise ReportError(f"{path}: the screenshot is blank ({colours} distinct colours)")
    images = embedded_images(report_html)
    broken = broken_images(browser, images)
    if broken:
        raise ReportError(f"{path}: {len(broken)} of {len(images)} images do not decode: {broken}")
    return {"text_chars": len(text), "screenshot_colours": colours, "images": len(images)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--expect", action="append", default=[], help="text the rendered page must contain")
    a = parser.parse_args(argv)
    if not a.report.is_file():
        print(f"error: {a.report}: file not found (make it with `snakemake --report {a.report}`)", file=sys.stderr)
        return 2
    try:
        seen = check_report(a.report, a.expect)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ReportError, subprocess.TimeoutExpired) as e:
        print(f"report check FAILED: {e}", file=sys.stderr)
        return 1
    print(
        f"report check ok: {a.report} ({seen['text_chars']} characters of text, "
        f"{seen['screenshot_colours']} colours on screen, {seen['images']} images decode)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
