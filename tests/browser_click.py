"""Open a memcomp HTML page in headless Chromium, click the first link whose text contains
TEXT, and report as JSON on stdout where the browser went and what it shows: the URL, title
and body text after the click, any dialog (alert/confirm) and page error. Run by
tests/test_html_safety.py inside a private network namespace, as browser_check.py is.

usage: python browser_click.py PAGE TEXT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from browser_check import CHROMIUM, FLAGS
from playwright.sync_api import sync_playwright


def main() -> None:
    page_path, text = Path(sys.argv[1]), sys.argv[2]
    found: dict[str, Any] = {"dialogs": [], "errors": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.on("pageerror", lambda e: found["errors"].append(str(e)))

        def dialog(d: Any) -> None:
            found["dialogs"].append(d.message)
            d.dismiss()

        page.on("dialog", dialog)
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        found["href"] = page.locator("a", has_text=text).first.get_attribute("href")
        page.locator("a", has_text=text).first.click()
        page.wait_for_timeout(1000)  # a javascript: link would have run by now
        page.wait_for_load_state("load")
        found["url"], found["title"] = page.url, page.title()
        found["body"] = page.evaluate("document.body ? document.body.innerText : ''")
        browser.close()
    print(json.dumps(found))


if __name__ == "__main__":
    main()
