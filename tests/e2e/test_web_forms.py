"""Web forms posted from browsers (issue 19, point 2) to a running worker on the
real broker: a public form key in the address, urlencoded and multipart bodies,
a honeypot, the redirect to a thank-you page, 422 for an invalid address, CORS
for the channel's origins, a rate limit per form and address – and a real page
in headless Chromium that posts a plain HTML form and a fetch()."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import orjson
import pytest

from pipeline.config.settings import Settings
from pipeline.config.topics import Topics, load_topics
from pipeline.dev.harness import WorkerProcess
from schemas.inquiry import Inquiry
from schemas.rejected import MessageRejected
from tests.support.broker import read_topic
from tests.support.browser import chromium
from tests.support.settings import isolated_settings

FORMS = {f"pub-form-{n}": "web_form" for n in range(8)}
"""A form key per test: each has its own rate-limit budget (all post from 127.0.0.1)."""


@dataclass
class Site:
    """The worker and the web site whose pages carry its forms."""

    settings: Settings
    topics: Topics
    origin: str
    root: Path
    seen: list[str] = field(default_factory=list)
    """Paths the site served (the thank-you page once the form was accepted)."""

    def form_url(self, key: str) -> str:
        return f"{self.settings.web_url}/v1/forms/{key}"

    def read(self, role: str) -> list[bytes]:
        spec = getattr(self.topics, role)
        found = asyncio.run(read_topic(self.settings.kafka_bootstrap, spec))
        return [raw or b"" for _, raw in found]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def post(
    url: str, body: bytes, content_type: str, method: str = "POST", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": content_type, **headers}
    )
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def served_site(root: Path, seen: list[str]) -> tuple[ThreadingHTTPServer, int]:
    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


@pytest.fixture(scope="module")
def site(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    state = tmp_path_factory.mktemp("forms")
    root = state / "site"
    root.mkdir()
    (root / "thanks.html").write_text("<html><body><h1>Danke!</h1></body></html>")
    seen: list[str] = []
    server, port = served_site(root, seen)
    origin = f"http://127.0.0.1:{port}"
    settings = isolated_settings(kafka, state).model_copy(
        update={
            "form_keys": FORMS,
            "form_origins": {"web_form": [origin]},
            "form_redirects": {"web_form": f"{origin}/thanks.html"},
            "form_burst": 3,
            "form_requests_per_minute": 1,
        }
    )
    try:
        with WorkerProcess(settings, state / "worker.log"):
            topics = load_topics(settings.topics_file, settings.topic_prefix)
            yield Site(settings, topics, origin, root, seen)
    finally:
        server.shutdown()
        server.server_close()


FORM = "application/x-www-form-urlencoded"


def test_a_plain_form_post_lands_as_an_inquiry_and_goes_to_the_thank_you_page(
    site: Site,
) -> None:
    body = urlencode(
        {"email": "anna.schmidt@firma.de", "last_name": "Schmidt", "inquiry_id": "pf-1"}
    )
    status, headers, _ = post(site.form_url("pub-form-0"), body.encode(), FORM, Origin=site.origin)
    assert status == 303 and headers["Location"] == f"{site.origin}/thanks.html"
    assert headers["Access-Control-Allow-Origin"] == site.origin
    stored = [Inquiry.model_validate_json(raw) for raw in site.read("inquiries")]
    mine = [i for i in stored if i.inquiry_id == "pf-1"]
    assert len(mine) == 1 and mine[0].source.channel == "web_form"
    assert mine[0].contact.email == "anna.schmidt@firma.de"


def test_json_from_fetch_gets_202_and_an_invalid_address_422_at_once(site: Site) -> None:
    url = site.form_url("pub-form-1")
    ok = orjson.dumps({"inquiry_id": "pf-2", "contact": {"email": "tom@firma.de"}})
    assert post(url, ok, "application/json")[0] == 202
    status, _, answer = post(url, urlencode({"email": "nope"}).encode(), FORM)
    assert status == 422
    errors = orjson.loads(answer)["errors"]
    assert [(e["code"], e["field"]) for e in errors] == [("email_invalid", "contact.email")]


def test_a_filled_honeypot_is_answered_as_accepted_but_kept_apart(site: Site) -> None:
    body = urlencode({"email": "bot@spam.example", "website": "http://spam.example"}).encode()
    status, headers, _ = post(site.form_url("pub-form-2"), body, FORM)
    assert status == 303 and headers["Location"].endswith("/thanks.html")  # learns nothing
    stored = [Inquiry.model_validate_json(raw) for raw in site.read("inquiries")]
    assert not any(i.contact.email == "bot@spam.example" for i in stored)
    rejections = [MessageRejected.model_validate_json(r).payload for r in site.read("rejected")]
    trapped = [r for r in rejections if base64.b64decode(r.original_b64) == body]
    assert len(trapped) == 1 and [x.code for x in trapped[0].reasons] == ["honeypot"]


def test_cors_only_for_the_channels_origins(site: Site) -> None:
    url = site.form_url("pub-form-3")
    preflight = {"Origin": site.origin, "Access-Control-Request-Method": "POST"}
    status, headers, _ = post(url, b"", FORM, method="OPTIONS", **preflight)
    assert status == 204 and headers["Access-Control-Allow-Origin"] == site.origin
    assert "POST" in headers["Access-Control-Allow-Methods"]
    evil = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    status, headers, _ = post(url, b"", FORM, method="OPTIONS", **evil)
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    body = urlencode({"email": "eve@firma.de"}).encode()
    status, headers, _ = post(url, body, FORM, Origin="http://evil.example")
    assert status == 403 and "Access-Control-Allow-Origin" not in headers


def test_an_unknown_form_key_and_an_operator_key_open_nothing(site: Site) -> None:
    body = urlencode({"email": "anna@firma.de"}).encode()
    assert post(site.form_url("guessed"), body, FORM)[0] == 404
    assert post(site.form_url("test-operator-key"), body, FORM)[0] == 404
    # and the public form key is no intake key
    status, _, _ = post(
        site.settings.web_url + "/v1/inquiries", body, FORM, **{"X-Api-Key": "pub-form-4"}
    )
    assert status == 401


def test_each_form_and_address_has_a_rate_limit(site: Site) -> None:
    url = site.form_url("pub-form-5")
    statuses = []
    for n in range(5):
        body = urlencode({"email": f"rate{n}@firma.de"}).encode()
        status, headers, _ = post(url, body, FORM)
        statuses.append(status)
    assert statuses[:3] == [303, 303, 303] and statuses[3:] == [429, 429]
    assert int(headers["Retry-After"]) >= 1
    other = urlencode({"email": "other@firma.de"}).encode()
    assert post(site.form_url("pub-form-6"), other, FORM)[0] == 303  # another form's budget


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Kontakt</title></head>
<body>
<form id="contact" action="{action}" method="post" enctype="multipart/form-data">
  <input name="first_name" value="Jürgen">
  <input name="last_name" value="Müller">
  <input name="email" value="juergen.mueller@mueller-soehne.de">
  <input name="company" value="Müller &amp; Söhne">
  <input name="inquiry_id" value="browser-1">
  <input name="product_interest" value="crm-suite">
  <input name="website" value="" style="display:none" tabindex="-1" autocomplete="off">
</form>
<script>document.getElementById("contact").submit();</script>
</body></html>
"""
"""The site's contact page: a plain HTML form (multipart, as a file upload form
would be), sent as a visitor would press the button."""
THANKS = """<!doctype html>
<html><head><meta charset="utf-8"><title>Danke</title></head>
<body><h1>Danke!</h1>
<script>
  // A script of the site posting JSON to the worker: not a simple request, so the
  // browser asks the worker first (CORS preflight) and sends it only if allowed.
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "{action}", false);
  xhr.setRequestHeader("Content-Type", "application/json");
  xhr.send(JSON.stringify({{"inquiry_id": "browser-fetch-1",
                            "contact": {{"email": "fetch.user@firma.de"}}}}));
</script>
</body></html>
"""
"""The thank-you page the worker sends the visitor to (303)."""


def test_a_real_page_in_headless_chromium_posts_the_form(site: Site, tmp_path: Path) -> None:
    browser = chromium()
    action = site.form_url("pub-form-7")
    (site.root / "contact.html").write_text(PAGE.format(action=action))
    (site.root / "thanks.html").write_text(THANKS.format(action=action))
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--timeout=20000",  # at most; it stops once the last page (thanks) has loaded
            f"--screenshot={tmp_path / 'thanks.png'}",
            f"{site.origin}/contact.html",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "/contact.html" in site.seen
    assert "/thanks.html" in site.seen  # the browser followed the 303
    stored = {i.inquiry_id: i for i in map(Inquiry.model_validate_json, site.read("inquiries"))}
    posted = stored["browser-1"]
    assert posted.source.channel == "web_form"
    assert (posted.contact.first_name, posted.contact.last_name) == ("Jürgen", "Müller")
    assert posted.contact.company == "Müller & Söhne"
    assert posted.product_interest == ["crm-suite"]
    # the preflight allowed the site's origin, so the browser sent the JSON
    assert stored["browser-fetch-1"].contact.email == "fetch.user@firma.de"
