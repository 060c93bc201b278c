"""The results page of a run, ``DIR/index.html``: every input with its fit picture, key metrics or failure, and an
interactive 3D view of its ``head.glb`` with a slider per expression.

The page is one static HTML file with relative links into the photo folders (move the run folder and it still
works). The still pictures (``fit.png``, linking to ``overlay.png``) are plain ``<img>`` elements: they are the
page offline. The 3D view is an enhancement: a small script imports three.js (pinned ``THREE_VERSION``, from the
jsDelivr CDN that three.js's installation guide names) with its ``GLTFLoader`` and ``OrbitControls``; when that
import fails (offline, blocked) the viewer stays hidden and one line says so. With three.js loaded, a photo's "3D"
button loads its ``head.glb`` (the first head opens by itself); three.js reads the morph target names from ``mesh.extras.targetNames`` and the
fitted weights from the mesh's default weights, and the page makes one range slider per target (range from
``mesh.extras.f2p.targetRanges``), plus "fitted" and "neutral" buttons and a head-pose switch. Browsers do not
let a ``file://`` page fetch files, so heads load only when the folder is served over HTTP (``python -m
http.server -d DIR``); the page says so when opened from disk.

Everything taken from the run (photo paths, errors, folder names) is HTML-escaped, and links are percent-encoded,
so names with ``<``, ``&``, quotes, spaces or ``#`` show as they are and link correctly.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from string import Template
from urllib.parse import quote

from f2p.atomic import atomic_writer

PAGE_FILE = "index.html"
THREE_VERSION = "0.187.0"
THREE_CDN = f"https://cdn.jsdelivr.net/npm/three@{THREE_VERSION}/"
"""three.js's npm package on jsDelivr (build/three.module.js and the examples/jsm/ add-ons)."""
PICTURES = (("fit.png", "overlay.png"),)
"""(picture shown, picture it links to) of a photo folder, when present."""
FILE_LINKS = ("head.glb", "params.json", "arkit.json", "mesh.obj", "metrics.json", "overlay.mp4", "frames.csv",
              "frames.npz", "clip.json")
"""Files of a photo or clip folder linked from its entry, when present."""
CLIP_FILE = "clip.json"
"""A clip folder's record (``pipeline.video_run``): its frames found and frame rate are shown with its entry."""
METRIC_LABELS = (("landmark_rmse_px", "landmark RMSE (px)"), ("identity_similarity", "identity similarity"),
                 ("seconds", "seconds"))
"""summary.csv columns shown per entry, with their labels."""
HEAD_FILE = "head.glb"


@dataclass(frozen=True)
class PageEntry:
    """One input on the page.

    Attributes:
        name: what the entry is called (the input's file name); source: its full path as the run was given it.
        status: "ok" or "failed"; error: the one-line reason of a failure.
        metrics: (label, value) pairs, values already formatted.
        pictures: (href shown, href linked) of its still pictures, relative to the page.
        links: (label, href) of its files, relative to the page.
        head: href of its head.glb, or None.
    """

    name: str
    source: str
    status: str
    error: str
    metrics: tuple[tuple[str, str], ...]
    pictures: tuple[tuple[str, str], ...]
    links: tuple[tuple[str, str], ...]
    head: str | None


def _href(page_dir: Path, path: Path) -> str:
    """A relative, percent-encoded URL of ``path`` from a page in ``page_dir``."""
    return quote(Path(os.path.relpath(path.resolve(), page_dir.resolve())).as_posix())


def page_entries(out_dir: Path, rows: list[dict[str, str]]) -> list[PageEntry]:
    """Entries of summary.csv ``rows`` (``export.summary.SUMMARY_COLUMNS``) for a page in ``out_dir``; the files
    of a row's output folder are linked where they exist."""
    entries = []
    for row in rows:
        folder = Path(row["output"]) if row.get("output") else None

        def exists(name: str) -> bool:
            return folder is not None and (folder / name).is_file()

        pictures = tuple((_href(out_dir, folder / shown),
                          _href(out_dir, folder / (linked if exists(linked) else shown)))
                         for shown, linked in PICTURES if exists(shown))
        links = tuple((name, _href(out_dir, folder / name)) for name in FILE_LINKS if exists(name))
        metrics = tuple((label, row[key]) for key, label in METRIC_LABELS if row.get(key))
        if exists(CLIP_FILE):
            metrics += clip_metrics(folder / CLIP_FILE)
        entries.append(PageEntry(name=Path(row["image"]).name, source=row["image"], status=row["status"],
                                 error=row.get("error", ""), metrics=metrics, pictures=pictures, links=links,
                                 head=_href(out_dir, folder / HEAD_FILE) if exists(HEAD_FILE) else None))
    return entries


def clip_metrics(path: Path) -> tuple[tuple[str, str], ...]:
    """(label, value) of a clip's ``clip.json``: frames found of all (and how many were bridged), frames per
    second; none for a record that cannot be read."""
    try:
        record = json.loads(path.read_text())
        frames, found = int(record["frames"]), int(record["frames_found"])
        rate = float(record["frames_per_second"])
    except (OSError, ValueError, KeyError, TypeError):
        return ()
    bridged = f" ({frames - found} bridged)" if found < frames else ""
    return (("frames found", f"{found} of {frames}{bridged}"), ("frames/s", f"{rate:.1f}"))


def _entry_html(entry: PageEntry, index: int) -> str:
    e = html.escape
    pictures = "".join(f'<a href="{e(linked)}"><img src="{e(shown)}" alt="fit of {e(entry.name)}" loading="lazy">'
                       "</a>" for shown, linked in entry.pictures)
    metrics = "".join(f"<dt>{e(label)}</dt><dd>{e(value)}</dd>" for label, value in entry.metrics)
    links = " ".join(f'<a href="{e(href)}">{e(label)}</a>' for label, href in entry.links)
    error = f'<p class="error">{e(entry.error)}</p>' if entry.error else ""
    head = (f'<button type="button" class="view3d" data-head="{e(entry.head)}" data-name="{e(entry.name)}" hidden>'
            "3D</button>" if entry.head else "")
    return (f'<article class="entry {e(entry.status)}" id="entry-{index}">'
            f'<h2 title="{e(entry.source)}">{e(entry.name)} <span class="status">{e(entry.status)}</span></h2>'
            f'<div class="pictures">{pictures}</div>{error}<dl>{metrics}</dl><p class="links">{links} {head}</p>'
            "</article>")


def report_html(title: str, entries: list[PageEntry]) -> str:
    """The page of ``entries`` (``page_entries``) titled ``title``."""
    failed = sum(entry.status != "ok" for entry in entries)
    counts = f"{len(entries) - failed} of {len(entries)} ok" + (f", {failed} failed" if failed else "")
    return PAGE_TEMPLATE.substitute(
        title=html.escape(title), counts=html.escape(counts),
        entries="\n".join(_entry_html(entry, i) for i, entry in enumerate(entries)),
        importmap=json.dumps({"imports": {"three": f"{THREE_CDN}build/three.module.js",
                                          "three/addons/": f"{THREE_CDN}examples/jsm/"}}))


def write_report_page(out_dir: Path, rows: list[dict[str, str]]) -> Path:
    """Write ``out_dir/index.html`` for summary.csv ``rows`` atomically; returns its path."""
    path = Path(out_dir) / PAGE_FILE
    text = report_html(f"f2p results: {Path(out_dir).resolve().name}", page_entries(Path(out_dir), rows))
    with atomic_writer(path) as handle:
        handle.write(text.encode("utf-8"))
    return path


PAGE_TEMPLATE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1rem 2rem; color: #222; background: #fafafa; }
header p { color: #555; }
#viewer { position: sticky; top: 0; background: #fff; border: 1px solid #ccc; padding: 0.5rem; z-index: 1;
          display: flex; gap: 1rem; max-height: 70vh; }
#viewer[hidden] { display: none; }
#viewer canvas { width: 480px; height: 480px; background: #eee; flex: none; }
#controls { overflow-y: auto; min-width: 16rem; }
#sliders label { display: grid; grid-template-columns: 11rem 1fr 3rem; gap: 0.3rem; font-size: 0.8rem; }
.entry { background: #fff; border: 1px solid #ddd; margin: 0.8rem 0; padding: 0.5rem 0.8rem; }
.entry h2 { font-size: 1rem; margin: 0.2rem 0; }
.entry.failed { border-color: #c33; }
.status { font-weight: normal; color: #666; }
.failed .status, .error { color: #b00; }
.pictures img { max-width: 100%; height: auto; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0 1rem; margin: 0.3rem 0; }
dd { margin: 0; }
</style>
<script type="importmap">$importmap</script>
</head>
<body>
<header>
<h1>$title</h1>
<p id="counts">$counts</p>
<p id="viewer-status">3D view: the still pictures are shown; the interactive heads need three.js from its CDN.</p>
</header>
<section id="viewer" hidden>
<canvas id="canvas" width="480" height="480"></canvas>
<div id="controls">
<p><strong id="viewer-name"></strong></p>
<p><button type="button" id="fitted">fitted</button> <button type="button" id="neutral">neutral</button>
<label><input type="checkbox" id="pose" checked> head pose</label></p>
<div id="sliders"></div>
</div>
</section>
<main>
$entries
</main>
<script>
"use strict";
(function () {
  var status = document.getElementById("viewer-status");
  var body = document.body;
  body.dataset.viewer = "loading";
  window.addEventListener("load", function () {
    var shown = 0;
    document.querySelectorAll(".pictures img").forEach(function (img) {
      if (img.complete && img.naturalWidth > 0) { shown += 1; }
    });
    body.dataset.picturesShown = String(shown);
  });
  var modules = [import("three"), import("three/addons/loaders/GLTFLoader.js"),
                 import("three/addons/controls/OrbitControls.js")];
  Promise.all(modules).then(start, function () {
    body.dataset.viewer = "offline";
    status.textContent = "3D view unavailable: three.js could not be loaded from its CDN (offline?). " +
      "The still pictures are shown.";
  });

  function start(loaded) {
    var THREE = loaded[0], loader = new loaded[1].GLTFLoader();
    var canvas = document.getElementById("canvas");
    var renderer = new THREE.WebGLRenderer({canvas: canvas, antialias: true});
    renderer.setPixelRatio(window.devicePixelRatio || 1);
    var scene = new THREE.Scene();
    scene.background = new THREE.Color(0xeeeeee);
    scene.add(new THREE.HemisphereLight(0xffffff, 0x444444, 2.0));
    var sun = new THREE.DirectionalLight(0xffffff, 1.5);
    sun.position.set(0.3, 0.5, 1.0);
    scene.add(sun);
    var camera = new THREE.PerspectiveCamera(20, 1, 0.01, 10);
    var controls = new loaded[2].OrbitControls(camera, canvas);
    var current = null, mesh = null, fittedWeights = [], poseRotation = null;
    function draw() { renderer.render(scene, camera); }
    controls.addEventListener("change", draw);
    document.getElementById("viewer").hidden = false;
    body.dataset.viewer = "ready";
    status.textContent = location.protocol === "file:" ?
      "3D view: browsers do not load files into a page opened from disk; serve this folder " +
      "(python -m http.server -d <this folder>) and open it over http:// to view the heads." :
      "3D view: press a photo's 3D button.";
    var buttons = document.querySelectorAll("button.view3d");
    buttons.forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { show(button.dataset.head, button.dataset.name); });
    });
    document.getElementById("fitted").addEventListener("click", function () { setWeights(fittedWeights); });
    document.getElementById("neutral").addEventListener("click", function () {
      setWeights(fittedWeights.map(function () { return 0; }));
    });
    document.getElementById("pose").addEventListener("change", function (event) {
      if (current) { current.quaternion.copy(event.target.checked ? poseRotation : new THREE.Quaternion()); draw(); }
    });
    if (buttons.length && location.protocol !== "file:") { buttons[0].click(); }

    function show(url, name) {
      status.textContent = "loading " + name + " ...";
      loader.load(url, function (gltf) {
        if (current) { scene.remove(current); }
        current = gltf.scene.children[0];
        poseRotation = current.quaternion.clone();
        if (!document.getElementById("pose").checked) { current.quaternion.identity(); }
        scene.add(current);
        mesh = null;
        current.traverse(function (object) { if (object.morphTargetInfluences && !mesh) { mesh = object; } });
        var box = new THREE.Box3().setFromObject(current), centre = box.getCenter(new THREE.Vector3());
        var size = box.getSize(new THREE.Vector3()).length();
        camera.position.set(centre.x, centre.y, centre.z + 2.2 * size);
        controls.target.copy(centre);
        controls.update();
        var extras = (gltf.parser.json.meshes[0].extras || {});
        sliders(mesh, extras.targetNames || [], (extras.f2p || {}).targetRanges || []);
        document.getElementById("viewer-name").textContent = name;
        status.textContent = "3D view: " + name;
        draw();
      }, undefined, function () {
        status.textContent = "cannot load the head of " + name + (location.protocol === "file:" ?
          ": serve this folder over http:// (python -m http.server)." : ".");
      });
    }

    function sliders(target, names, ranges) {
      var panel = document.getElementById("sliders");
      panel.replaceChildren();
      fittedWeights = target ? Array.from(target.morphTargetInfluences) : [];
      fittedWeights.forEach(function (weight, k) {
        var label = document.createElement("label"), text = document.createElement("span");
        var input = document.createElement("input"), value = document.createElement("output");
        var range = ranges[k] || [Math.min(0, weight), Math.max(1, weight)];
        text.textContent = names[k] || ("target " + k);
        input.type = "range"; input.min = range[0]; input.max = range[1]; input.step = "any";
        input.defaultValue = String(weight); input.dataset.index = String(k);
        value.textContent = weight.toFixed(2);
        input.addEventListener("input", function () {
          target.morphTargetInfluences[k] = Number(input.value);
          value.textContent = Number(input.value).toFixed(2);
          draw();
        });
        label.append(text, input, value);
        panel.append(label);
      });
    }

    function setWeights(weights) {
      document.querySelectorAll("#sliders input").forEach(function (input) {
        var k = Number(input.dataset.index);
        input.value = weights[k];
        input.dispatchEvent(new Event("input"));
      });
    }
  }
})();
</script>
</body>
</html>
""")
