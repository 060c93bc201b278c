"""The results page index.html: every input with its pictures, metrics or failure, escaped; written by the run loop
(also on resume); in a real headless browser its offline fallback renders without script errors."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import torch
from PIL import Image

from f2p.export.gltf import write_head_glb
from f2p.export.photo import PhotoExporter
from f2p.export.report_page import PAGE_FILE, THREE_CDN, THREE_VERSION, write_report_page
from f2p.naming import source_record
from f2p.perception.photo import PhotoError, PhotoSample
from f2p.pipeline.photo_run import PhotoRun
from f2p.render.renderer import MeshRenderer
from f2p.scene.compose import render_scene
from f2p.scene.params import SceneSpec

CHROMIUM = Path("/usr/bin/chromium")
NASTY = 'a<b>&"c\' #1.jpg'
"""A photo name with every character HTML or URLs treat specially."""


class PageParser(HTMLParser):
    """Collects the page's elements: (tag, attrs) in order, the text of each article's parts, and script bodies."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.articles: list[dict[str, list]] = []
        self.scripts: list[str] = []
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attributes))
        if tag == "article":
            self.articles.append({"attrs": attributes, "h2": [], "error": [], "dd": [], "img": [], "a": []})
        elif self.articles and tag in ("img", "a"):
            self.articles[-1][tag].append(attributes)
        if tag not in ("img", "meta", "input", "br", "link"):
            self._stack.append(tag if tag != "p" or attributes.get("class") != "error" else "error")

    def handle_endtag(self, tag: str) -> None:
        if self._stack:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        if self._stack and self._stack[-1] == "script":
            self.scripts.append(data)
            return
        inside = [tag for tag in self._stack if tag in ("h2", "error", "dd")]
        if self.articles and inside:
            self.articles[-1][inside[-1]].append(data)


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def photo_folder(root: Path, name: str) -> Path:
    """A photo folder with a fit.png, an overlay.png and a head.glb placeholder."""
    folder = root / name
    folder.mkdir(parents=True)
    Image.new("RGB", (96, 32), (200, 120, 90)).save(folder / "fit.png")
    Image.new("RGB", (32, 32), (90, 120, 200)).save(folder / "overlay.png")
    (folder / "head.glb").write_bytes(b"glTF")
    return folder


def rows_of(out: Path) -> list[dict[str, str]]:
    folder = photo_folder(out, "face" + NASTY.replace("/", "_"))
    return [
        {"image": f"/photos/{NASTY}", "status": "ok", "error": "", "landmark_rmse_px": "1.2345",
         "identity_similarity": "0.8100", "seconds": "3.0000", "output": str(folder)},
        {"image": "/photos/<img src=x onerror=alert(1)>.png", "status": "failed",
         "error": 'no face found in "<script>" & more', "landmark_rmse_px": "", "identity_similarity": "",
         "seconds": "", "output": ""},
    ]


def test_page_lists_every_input_escaped_with_working_relative_links(tmp_path):
    out = tmp_path / "run"
    rows = rows_of(out)
    page = parse(write_report_page(out, rows))
    ok, failed = page.articles
    assert "".join(ok["h2"]).startswith(NASTY) and "ok" in "".join(ok["h2"])
    assert ok["attrs"]["class"] == "entry ok" and failed["attrs"]["class"] == "entry failed"
    assert ok["dd"] == ["1.2345", "0.8100", "3.0000"]
    assert "".join(failed["error"]) == rows[1]["error"] and failed["img"] == []
    assert "".join(failed["h2"]).startswith("<img src=x onerror=alert(1)>.png")
    scripts = [attrs for tag, attrs in page.elements if tag == "script"]
    assert len(scripts) == 2 and scripts[0]["type"] == "importmap"  # no script injected by a name
    (img,) = ok["img"]
    assert not urlparse(img["src"]).scheme and (out / unquote(img["src"])).is_file()  # relative, percent-encoded
    links = {Path(unquote(a["href"])).name: a for a in ok["a"]}
    assert (out / unquote(links["overlay.png"]["href"])).is_file()  # the picture links to the photo-sized overlay
    assert (out / unquote(links["head.glb"]["href"])).is_file()
    buttons = [attrs for tag, attrs in page.elements if tag == "button" and "data-head" in attrs]
    assert [unquote(b["data-head"]) for b in buttons] == [unquote(links["head.glb"]["href"])]
    assert buttons[0]["data-name"] == NASTY and "hidden" in buttons[0]  # shown by the script once three.js loads
    importmap = json.loads(page.scripts[0])["imports"]
    assert importmap["three"] == THREE_CDN + "build/three.module.js" and THREE_CDN.startswith("https://")
    assert {"canvas", "section"} <= {tag for tag, _ in page.elements}


class FailingLoader:
    """Photo file -> PhotoError with a fixed reason (a photo f2p cannot use)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __call__(self, path: Path) -> PhotoSample:
        raise PhotoError(path, self.reason)


def finished_photo(spec: SceneSpec, photo: Path, out_dir: Path, settings: dict) -> None:
    """Export the procedural face as ``photo``'s finished outputs (metrics.json records it and ``settings``)."""
    renderer = MeshRenderer()
    params = spec.initial(1)
    params["translation"][:, 2] = 0.9
    scene = render_scene(spec, params, renderer)
    crop, landmarks = scene.render.image[0], scene.landmarks2d[0]
    sample = PhotoSample(str(photo), crop, landmarks, torch.ones(68), "test", crop, landmarks,
                         torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), torch.ones(1, *spec.image_size))
    PhotoExporter(spec, renderer).export(sample, params, out_dir,
                                         {"source": source_record(photo), "settings": settings})


def test_the_run_loop_writes_the_page_and_rewrites_it_on_resume(procedural_model, tmp_path):
    spec = SceneSpec(procedural_model, (48, 48))
    photos = [tmp_path / "good.png", tmp_path / "bad & ugly.png"]
    for photo in photos:
        Image.new("RGB", (48, 48)).save(photo)
    out, names, settings = tmp_path / "run", ["good-1", "bad-2"], {"model": "procedural"}
    exporter = PhotoExporter(spec, MeshRenderer())
    PhotoRun(out, exporter, settings=settings).process(photos, names, FailingLoader("no face found"), estimator=None)
    first = parse(out / PAGE_FILE)
    assert [a["attrs"]["class"] for a in first.articles] == ["entry failed", "entry failed"]

    finished_photo(spec, photos[0], out / names[0], settings)  # the good photo finished meanwhile
    run = PhotoRun(out, exporter, settings=settings)
    todo = run.resume(photos, names)
    run.process([photos[i] for i in todo], [names[i] for i in todo], FailingLoader("still no face"), estimator=None)
    page = parse(out / PAGE_FILE)
    bad, good = page.articles  # sorted by path
    assert good["attrs"]["class"] == "entry ok" and "".join(bad["error"]) == "still no face"
    assert "".join(bad["h2"]).startswith("bad & ugly.png")
    (img,) = good["img"]
    assert Path(unquote(img["src"])) == Path(names[0]) / "fit.png"


def chromium_page(page: Path | str, profile: Path, *flags: str) -> tuple[str, str]:
    """Load ``page`` (a file, or a URL) in headless Chromium with every host name unresolvable (offline); returns
    the DOM after scripts ran and Chromium's log."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package for the headless-browser test")
    url = page.resolve().as_uri() if isinstance(page, Path) else page
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", f"--user-data-dir={profile}",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=10000",
         "--enable-logging=stderr", "--v=0", *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, result.stderr


def test_headless_chromium_shows_the_offline_fallback_without_script_errors(tmp_path):
    out = tmp_path / "run"
    page = write_report_page(out, rows_of(out))
    dom, log = chromium_page(page, tmp_path / "profile", "--disable-gpu")
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert not console, console  # no uncaught error, no failed promise
    body = next(attrs for tag, attrs in parse_text(dom).elements if tag == "body")
    assert body["data-viewer"] == "offline"  # three.js could not come from its CDN: the script said so
    assert body["data-pictures-shown"] == "1"  # the ok photo's fit.png rendered
    assert "three.js could not be loaded" in dom


def test_headless_check_can_fail_on_a_script_error(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>notAFunction();</script></body></html>")
    _, log = chromium_page(page, tmp_path / "profile", "--disable-gpu")
    assert any(":CONSOLE" in line and "notAFunction" in line for line in log.splitlines())


def parse_text(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    parser.close()
    return parser


def local_three() -> Path:
    """three.js THREE_VERSION installed with npm (``npm install -g three@THREE_VERSION``), or skip saying why."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: no local three.js for the interactive-view test")
    root = Path(subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=60).stdout.strip())
    package = root / "three" / "package.json"
    if not package.is_file() or json.loads(package.read_text())["version"] != THREE_VERSION:
        pytest.skip(f"three@{THREE_VERSION} is not installed globally with npm (npm install -g three@{THREE_VERSION})")
    return root / "three"


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without logging each request."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_served_page_builds_a_slider_per_morph_target_with_the_fitted_weights(procedural_model, tmp_path):
    three = local_three()
    out = tmp_path / "site" / "run"
    folder = photo_folder(out, "face-1")
    expression = torch.tensor([0.25, 0.5, 0.75, 0.125])[:procedural_model.groups["expression"].size]
    write_head_glb(folder / "head.glb", procedural_model, {"expression": expression},
                   torch.full((procedural_model.num_vertices, 3), 0.6), torch.tensor([0.0, 0.3, 0.0]))
    page = write_report_page(out, [{"image": "/photos/face.jpg", "status": "ok", "error": "", "output": str(folder),
                                    "landmark_rmse_px": "1.0", "identity_similarity": "", "seconds": "1.0"}])
    (tmp_path / "site" / "three").symlink_to(three)  # the CDN's layout, served locally: the test stays offline
    page.write_text(page.read_text().replace(THREE_CDN, "/three/"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tmp_path / "site")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dom, log = chromium_page(f"http://127.0.0.1:{server.server_address[1]}/run/{PAGE_FILE}", tmp_path / "profile",
                                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader")
    finally:
        server.shutdown()
    assert not [line for line in log.splitlines() if ":CONSOLE" in line]
    page_dom = parse_text(dom)
    body = next(attrs for tag, attrs in page_dom.elements if tag == "body")
    assert body["data-viewer"] == "ready"
    sliders = [attrs for tag, attrs in page_dom.elements if tag == "input" and attrs.get("type") == "range"]
    assert [float(s["value"]) for s in sliders] == pytest.approx(expression.tolist(), abs=1e-6)
    assert all((float(s["min"]), float(s["max"])) == (0.0, 1.0) for s in sliders)  # the sliders' [0, 1] range
    assert "3D view: face.jpg" in dom
