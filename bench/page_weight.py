#!/usr/bin/env python
"""What a browser transfers for a product page, and how fast the server renders it.

    .venv/bin/python bench/page_weight.py

Starts `stall serve` on the demo store, loads the pay-what-you-want product page in headless
Chromium (Debian's), sums the bytes transferred by kind (HTML, CSS, JS, images), counts requests
to any origin other than the store's, and checks the page works with JavaScript off (the Buy link
leads to a working form). Then times 500 sequential GETs of the page on one keep-alive connection
against 500 GETs of /healthz (one SELECT 1, no template) as the baseline.
"""

import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkout import BIN, free_port, wait_ready  # noqa: E402


def timed_gets(port: int, path: str, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    out = []
    for _ in range(n):
        start = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        out.append(time.perf_counter() - start)
    conn.close()
    return out


def main() -> None:
    from playwright.sync_api import sync_playwright

    data_dir = Path(tempfile.mkdtemp(prefix="stall-page-"))
    env = {**os.environ, "STALL_DATA_DIR": str(data_dir), "STALL_LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    subprocess.run([str(BIN / "stall"), "demo"], env=env, check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    server = subprocess.Popen([str(BIN / "stall"), "serve", "--port", str(port), "--no-worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/s/demo/sample-pack/"
    try:
        wait_ready(port)
        sizes: dict[str, int] = {}
        third_party = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page()
            responses = []
            page.on("response", lambda r: responses.append(r))
            page.goto(url, wait_until="networkidle")
            for r in responses:
                if urlsplit(r.url).port != port:
                    third_party.append(r.url)
                kind = r.request.resource_type
                s = r.request.sizes()
                sizes[kind] = sizes.get(kind, 0) + s["responseBodySize"] + s["responseHeadersSize"]
            nojs = browser.new_context(java_script_enabled=False).new_page()
            nojs.goto(url)
            nojs.get_by_role("link", name="Buy").click()
            works_without_js = nojs.get_by_label("Your email").is_visible()
            browser.close()
        page_times = timed_gets(port, urlsplit(url).path, 500)
        base_times = timed_gets(port, "/healthz", 500)
    finally:
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(data_dir, ignore_errors=True)

    text_kinds = ("document", "stylesheet", "script")
    text_total = sum(v for k, v in sizes.items() if k in text_kinds)
    print(f"page                    {urlsplit(url).path}")
    for kind, size in sorted(sizes.items()):
        print(f"  {kind:<21} {size / 1024:6.1f} KB")
    print(f"HTML + CSS + JS         {text_total / 1024:6.1f} KB (target < 50 KB)")
    print(f"everything              {sum(sizes.values()) / 1024:6.1f} KB (with the cover image)")
    print(f"third-party requests    {len(third_party)}")
    print(f"works without JS        {'yes' if works_without_js else 'NO'}")
    p50, b50 = statistics.median(page_times) * 1000, statistics.median(base_times) * 1000
    print(f"product page p50        {p50:.2f} ms (client-measured, keep-alive, sequential)")
    print(f"baseline /healthz p50   {b50:.2f} ms")
    print(f"ratio                   {p50 / b50:.2f}x the baseline")


if __name__ == "__main__":
    main()
