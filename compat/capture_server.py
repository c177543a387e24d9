"""Capture the request bodies that frameworks send, answered by replay's own responders.

Run with the project's venv: `python compat/capture_server.py PORT OUT_DIR`. It serves plain
HTTP on 127.0.0.1:PORT; a client pointed at `http://127.0.0.1:PORT/v1` (OpenAI) or
`http://127.0.0.1:PORT` (Anthropic) gets synthetic answers, and every request is written to
OUT_DIR as `{"path": ..., "body": ...}`, named after its `x-capture` header (the label the
client gives it; a later request with the same label overwrites). `compat/capture_prompts.py`
is the client side; the files it leaves are the fixtures in tests/data/prompts/.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from replay.models import Request
from replay.providers import router
from replay.providers.base import BadCall, Call, Session

SESSION = Session()


class Capture(BaseHTTPRequestHandler):
    out: Path

    def _answer(self) -> None:
        size = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(size) if size else b""
        parts = urlsplit(self.path)
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", self.headers.get("x-capture", "request"))
        saved = {"path": parts.path, "body": json.loads(body) if body else None}
        text = json.dumps(saved, indent=1, ensure_ascii=False) + "\n"
        (self.out / f"{label}.json").write_text(text)
        request = Request(
            self.command,
            "http",
            "127.0.0.1",
            80,
            parts.path,
            tuple(parse_qsl(parts.query, keep_blank_values=True)),
            tuple((k.lower(), v) for k, v in self.headers.items()),
            body,
        )
        found = router.find(request)
        if found is None:
            self.send_error(404)
            return
        route, params = found
        seed = hashlib.sha256(self.command.encode() + parts.path.encode() + body).hexdigest()
        try:
            answer = route.respond(Call(request, seed, 0, None, SESSION, params))
        except BadCall as e:
            self.send_error(400, str(e))
            return
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    port, out = int(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    Capture.out = out
    ThreadingHTTPServer(("127.0.0.1", port), Capture).serve_forever()


if __name__ == "__main__":
    main()
