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


# Every plot inlined (an <img>'s SVG has no DOM to measure), then, in the rendered page: no
# legend box meets a data mark or a plot area, category labels within a plot are unique, and
# so are the (model, numerics, runtime, precision) rows of each latency table.
LAYOUT = """<script>window.addEventListener('load', () => {
  const bad = [], box = e => e.getBoundingClientRect();
  const meet = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom &&
                         b.top < a.bottom;
  const svgs = [...document.querySelectorAll('svg')];
  svgs.forEach((svg, i) => {
    const data = [...svg.querySelectorAll('.mark, .plot-area')].map(box);
    svg.querySelectorAll('g.legend').forEach(g => {
      if (data.some(d => meet(box(g), d))) bad.push('plot ' + i + ': legend over data');
    });
    const names = [...svg.querySelectorAll('text.category')].map(t => t.textContent);
    if (new Set(names).size !== names.length) bad.push('plot ' + i + ': repeated labels');
  });
  const legends = document.querySelectorAll('g.legend').length;
  document.querySelectorAll('table').forEach((t, i) => {
    if (!t.rows[0].textContent.includes('runtime precision')) return;
    const keys = [...t.rows].slice(1).map(r => [...r.cells].slice(0, 4)
                                               .map(c => c.textContent.trim()).join('|'));
    if (new Set(keys).size !== keys.length) bad.push('table ' + i + ': repeated rows');
  });
  document.title = 'plots ' + svgs.length + ' legends ' + legends + ': ' +
                   (bad.join('; ') || 'ok');
}); </script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs "
                                             "Debian's chromium where apt-get is available)")
def test_no_legend_covers_a_data_point_and_every_label_is_unique(run, tmp_path):
    import base64
    import re

    _, _, out, _ = run
    html = (out / "report.html").read_text()
    inline = re.sub(r'<img alt="[^"]*" src="data:image/svg\+xml;base64,([^"]+)">',
                    lambda m: base64.b64decode(m.group(1)).decode(), html)
    n_plots = html.count("data:image/svg+xml")
    probe = tmp_path / "layout.html"
    probe.write_text(inline.replace("</body>", LAYOUT + "</body>"))
    dom = _chromium(tmp_path, "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    title = re.search(r"<title>(plots \d+ legends \d+: .*)</title>", dom.stdout)
    assert title, dom.stdout[:500]
    n, legends, verdict = re.match(r"plots (\d+) legends (\d+): (.*)", title.group(1)).groups()
    assert int(n) == n_plots >= 5 and int(legends) >= 1  # the page held what it should
    assert verdict == "ok"
