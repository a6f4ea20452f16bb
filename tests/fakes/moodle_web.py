"""A stand-in for the Moodle web server of the demo site, with ManiReports under its host.

What a learner's browser meets on a real site set up as deploy/nginx-moodle-path.conf says:
- `/login/index.php` signs in with the demo site's own accounts (the Moodle password check
  ManiReports uses) and does what Moodle's login does to the session store: a `sessions` row
  (common/moodle/demo/sessions.py) and the `MoodleSession` cookie, Path=/, HttpOnly;
- `/login/logout.php` deletes the row; `/course/view.php?id=N` is a course page as Moodle marks
  it (body class `course-N`) with the site's *Additional HTML* (the heartbeat snippet);
- `/manireports/…` is passed to the ManiReports web tier as the nginx example passes it: the
  prefix stripped, `X-Forwarded-For/-Proto/-Host` and `X-Forwarded-Prefix: /manireports` set,
  cookies (Moodle's included) going through untouched.
"""

from __future__ import annotations

import http.client
import time
from html import escape
from urllib.parse import urlsplit

from sqlalchemy import select
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from common.access.passwords import verify_moodle_password
from common.db import make_engine
from common.moodle.demo.sessions import sign_in, sign_out
from common.moodle.tables import MoodleTables
from tests.fakes.local_http import LocalWsgiServer

PROXY_PATH = "/manireports"
COOKIE = "MoodleSession"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "host", "content-length"}  # fmt: skip


LOGIN_FORM = (
    '<form method="post" action="/login/index.php">'
    '<input id="username" name="username"><input id="password" name="password" type="password">'
    '<button id="loginbtn" type="submit">Log in</button></form>'
)


class DemoMoodleWeb:
    def __init__(self, moodle_url: str, upstream: str, additional_html: str = "") -> None:
        self.engine = make_engine(moodle_url)
        self.tables = MoodleTables()
        self.upstream = urlsplit(upstream)
        self.additional_html = additional_html
        self._http = LocalWsgiServer(self._wsgi)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def start(self) -> DemoMoodleWeb:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()
        self.engine.dispose()

    def _wsgi(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        if request.path == PROXY_PATH or request.path.startswith(PROXY_PATH + "/"):
            response = self._proxy(request)
        elif request.path == "/login/index.php":
            response = self._login(request)
        elif request.path == "/login/logout.php":
            response = self._logout(request)
        elif request.path == "/course/view.php":
            response = self._course(request)
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)

    def _page(self, body_class: str, content: str) -> Response:
        html = (f'<!doctype html><html><head><title>Demo Moodle</title></head>'
                f'<body id="page" class="{body_class}">{content}{self.additional_html}'
                "</body></html>")  # fmt: skip
        return Response(html, content_type="text/html; charset=utf-8")

    def _login(self, request: Request) -> Response:
        if request.method != "POST":
            return self._page("pagelayout-login", LOGIN_FORM)
        user = self.tables.user
        with self.engine.connect() as conn:
            row = conn.execute(
                select(user.c.id, user.c.password).where(
                    user.c.username == request.form.get("username", ""), user.c.deleted == 0,
                    user.c.suspended == 0)
            ).first()  # fmt: skip
        if row is None or not verify_moodle_password(
            request.form.get("password", ""), row.password
        ):
            return self._page("pagelayout-login", '<p id="loginerrormessage">Invalid login</p>')
        sid = sign_in(self.engine, int(row.id), int(time.time()), ip=request.remote_addr or "")
        response = Response(status=303, headers={"Location": "/my/"})
        response.set_cookie(COOKIE, sid, path="/", httponly=True)
        return response

    def _logout(self, request: Request) -> Response:
        sid = request.cookies.get(COOKIE)
        if sid:
            sign_out(self.engine, sid)
        response = Response(status=303, headers={"Location": "/"})
        response.delete_cookie(COOKIE, path="/")
        return response

    def _course(self, request: Request) -> Response:
        course = request.args.get("id", "0")
        course_id = int(course) if course.isdigit() else 0
        return self._page(f"course-{course_id} cmid-0", f"<h1>Course {escape(course)}</h1>")

    def _proxy(self, request: Request) -> Response:
        """`location /manireports/ { proxy_pass http://manireports/; … }`."""
        path = request.path[len(PROXY_PATH) :] or "/"
        if request.query_string:
            path += "?" + request.query_string.decode("latin-1")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        forwarded_for = request.headers.get("X-Forwarded-For")
        client = request.remote_addr or ""
        headers.update({
            "Host": self.upstream.netloc,
            "X-Forwarded-For": f"{forwarded_for}, {client}" if forwarded_for else client,
            "X-Forwarded-Proto": request.scheme,
            "X-Forwarded-Host": request.host,
            "X-Forwarded-Prefix": PROXY_PATH,
        })  # fmt: skip
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            conn.request(request.method, path, body=request.get_data(), headers=headers)
            upstream = conn.getresponse()
            body = upstream.read()
            response = Response(body, status=upstream.status)
            response.headers = Headers(
                [(k, v) for k, v in upstream.getheaders() if k.lower() not in HOP_BY_HOP]
            )
        finally:
            conn.close()
        return response
