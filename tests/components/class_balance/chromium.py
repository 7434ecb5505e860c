"""Headless Chromium with the network disabled: load a page, measure what rendered, screenshot.

The network is cut three ways: every host name resolves to nothing, every request goes to a
proxy on a closed local port, and background networking is off. A page that needs anything from
the web renders incompletely; ``measure`` reports every resource the page fetched.
"""
import json
import os
import shutil
import subprocess
from typing import Dict, Optional

OFFLINE = ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
           '--host-resolver-rules=MAP * ~NOTFOUND', '--proxy-server=http://127.0.0.1:9',
           '--proxy-bypass-list=<-loopback>', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--no-first-run',
           '--disable-extensions', '--disable-default-apps']
WIDTH = 1280

# Loads the page in a same-size iframe (file:// pages may script each other only with
# --allow-file-access-from-files), waits for its load event, and writes what rendered as JSON.
_HARNESS = """<!doctype html><html><body style="margin:0">
<iframe id="f" src="%(page)s" style="border:0;width:%(width)dpx;height:30000px"></iframe>
<pre id="out">pending</pre><script>
document.getElementById('f').addEventListener('load', function () {
  var w = this.contentWindow, d = w.document;
  var imgs = Array.prototype.slice.call(d.images);
  var out = {
    title: d.title,
    height: Math.ceil(d.body.getBoundingClientRect().bottom),
    sections: Array.prototype.map.call(d.querySelectorAll('section[id]'), function (s) {
      var r = s.getBoundingClientRect();
      return {id: s.id, top: r.top, height: r.height, width: r.width,
              heading: (s.querySelector('h2') || {}).textContent || ''};
    }),
    images: imgs.length,
    decoded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
    svgs: Array.prototype.filter.call(d.querySelectorAll('svg'), function (s) {
      var r = s.getBoundingClientRect(); return r.width > 0 && r.height > 0; }).length,
    resources: w.performance.getEntriesByType('resource').map(function (e) { return e.name; }),
    scripts: d.scripts.length
  };
  document.getElementById('out').textContent = 'RESULT' + JSON.stringify(out) + 'END';
});
</script></body></html>"""


def find() -> Optional[str]:
  return shutil.which('chromium') or shutil.which('chromium-browser')


def measure(chromium: str, page: str, work_dir: str) -> Dict[str, object]:
  """What ``page`` rendered, offline: sections (id, top, height), images decoded, visible SVGs,
  resources fetched, document height."""
  harness = os.path.join(work_dir, 'harness.html')
  with open(harness, 'w') as f:
    f.write(_HARNESS % {'page': 'file://' + os.path.abspath(page), 'width': WIDTH})
  done = subprocess.run(
      [chromium, *OFFLINE, '--allow-file-access-from-files', '--virtual-time-budget=15000',
       f'--window-size={WIDTH},1000', f'--user-data-dir={work_dir}/profile-m', '--dump-dom',
       'file://' + harness], capture_output=True, text=True, timeout=180)
  out = done.stdout
  if 'RESULT' not in out:
    raise AssertionError(f'the harness did not report (page did not load?):\n'
                         f'{out[-1000:]}\n{done.stderr[-2000:]}')
  return json.loads(out.split('RESULT', 1)[1].split('END', 1)[0])


def screenshot(chromium: str, page: str, png: str, height: int, work_dir: str) -> None:
  """A WIDTH x height screenshot of ``page``, offline."""
  done = subprocess.run(
      [chromium, *OFFLINE, f'--window-size={WIDTH},{height}', f'--screenshot={png}',
       f'--user-data-dir={work_dir}/profile-s', 'file://' + os.path.abspath(page)],
      capture_output=True, text=True, timeout=180)
  if not os.path.exists(png):
    raise AssertionError(f'no screenshot: {done.stderr[-2000:]}')
