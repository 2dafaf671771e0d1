"""A browser-like client for the workspace, in-process (httpx's ASGI transport): it keeps
cookies between requests, signs in through the login form, and sends forms with the CSRF
token of the page they came from, as a browser would."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx

PASSWORD = "correct horse battery staple"
# One account of each role, made by the ``accounts`` fixture in conftest.
COORDINATOR = "anna@coordination.example"
SIGNER = "lars@fk.example"
VIEWER = "vera@region.example"
SIGNER_ORG = "Försäkringskassan"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


class Client:
    def __init__(self, app: object, base_url: str = "http://127.0.0.1:8000") -> None:
        self.app = app
        self.base_url = base_url
        self.cookies = httpx.Cookies()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)  # type: ignore[arg-type]
            async with httpx.AsyncClient(
                transport=transport, base_url=self.base_url, cookies=self.cookies
            ) as c:
                response = await c.request(method, path, **kw)
                self.cookies = httpx.Cookies(c.cookies)
                return response

        kw.setdefault("follow_redirects", False)
        return asyncio.run(go())

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def submit(
        self, page: str, action: str | None = None, data: dict[str, Any] | None = None, **kw: Any
    ) -> httpx.Response:
        """Open ``page``, then post ``data`` to ``action`` (default: the page) with its token."""
        shown = self.get(page)
        assert shown.status_code == 200, (page, shown.status_code)
        form = {"csrf": csrf_of(shown.text), **(data or {})}
        return self.post(action or page, data=form, **kw)

    def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return self.submit(
            "/workspace/login", data={"email": email, "password": password, "back": "/workspace/"}
        )

    @property
    def session_cookie(self) -> str | None:
        return self.cookies.get("samverkan_session")
