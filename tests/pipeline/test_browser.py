"""report.html in a real browser: headless Chromium (Debian's package; `make test` installs
it) renders the page with every plot decoded, and the screenshot is not blank."""

import shutil
import subprocess

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=5000"]
# appended to a copy of the report (the report itself carries no script): after load, the
# title says how many images decoded
PROBE = ("<script>window.addEventListener('load', () => { const im = [...document.images];"
         " document.title = 'decoded ' + im.filter(i => i.complete && i.naturalWidth > 0)"
         ".length + ' of ' + im.length; });</script>")


def _chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs "
                                             "Debian's chromium where apt-get is available)")
def test_the_report_renders_in_chromium_with_every_plot(run, tmp_path):
    from PIL import Image

    _, _, out, _ = run
    html = (out / "report.html").read_text()
    n_images = html.count("<img ")
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f"<title>decoded {n_images} of {n_images}</title>" in dom.stdout
    assert n_images >= 5
    shot = tmp_path / "shot.png"
    r = _chromium(tmp_path, "--window-size=1100,2400", f"--screenshot={shot}",
                  (out / "report.html").as_uri())
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 20  # text, tables and plots — not a blank page
    dark = (pixels < 128).mean()
    assert 0.01 < dark < 0.5
