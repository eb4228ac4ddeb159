"""Open a gallery in headless Chromium: JavaScript errors, whether each audio/video element loads its
media (metadata decoded, a duration), whether each image decodes, and a screenshot."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--no-first-run"]  # fmt: skip

# A page that opens the gallery in a frame and reports on it (file: URLs share an origin under
# --allow-file-access-from-files, so the frame's document is readable).
PROBE = """<!doctype html><html><body><pre id="result">pending</pre>
<iframe id="gallery" style="width:1280px;height:4000px"></iframe>
<script>
const errors = [];
const frame = document.getElementById("gallery");
frame.addEventListener("load", () => {
  const doc = frame.contentDocument;
  const media = Array.from(doc.querySelectorAll("audio, video"));
  const images = Array.from(doc.querySelectorAll("img")).map(i => (
    {src: i.getAttribute("src"), ok: i.complete && i.naturalWidth > 0}));
  const found = [];
  let pending = media.length;
  const finish = () => { document.getElementById("result").textContent =
    "RESULT" + JSON.stringify({errors, media: found, images, title: doc.title}) + "END"; };
  if (pending === 0) finish();
  for (const m of media) {
    const row = {tag: m.tagName.toLowerCase(), src: m.getAttribute("src"),
                 can_play: m.canPlayType(m.getAttribute("type") || "")};
    const done = ok => { row.ok = ok; row.duration = m.duration; row.error = m.error ? m.error.code : null;
                         found.push(row); if (--pending === 0) finish(); };
    if (m.readyState >= 1) done(true);
    else { m.addEventListener("loadedmetadata", () => done(true), {once: true});
           m.addEventListener("error", () => done(false), {once: true}); m.load(); }
  }
});
frame.contentWindow.addEventListener("error", e => errors.push(String(e.message)));
window.addEventListener("error", e => errors.push(String(e.message)));
frame.src = GALLERY;
</script></body></html>"""


def inspect(index: Path, screenshot: Path, timeout: float = 120) -> dict:
    """What Chromium saw of ``index`` (see the module); writes ``screenshot`` (PNG) of the page."""
    assert CHROMIUM is not None, "chromium is not installed"
    index = index.resolve()
    probe = index.parent / ".browser-probe.html"
    probe.write_text(PROBE.replace("GALLERY", json.dumps(index.as_uri())))
    try:
        run = subprocess.run([CHROMIUM, *FLAGS, "--virtual-time-budget=20000", "--dump-dom", probe.as_uri()],
                             capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
    finally:
        probe.unlink(missing_ok=True)
    found = re.search(r"RESULT(.*?)END", run.stdout, re.DOTALL)
    assert found, f"the probe page reported nothing; chromium said: {run.stderr[-2000:]}"
    subprocess.run([CHROMIUM, *FLAGS, "--window-size=1280,1600", f"--screenshot={screenshot}", index.as_uri()],
                   capture_output=True, timeout=timeout, check=False)  # fmt: skip
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
