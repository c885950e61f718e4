#!/usr/bin/env python3
"""A small ClickHouse HTTP interface in front of chdb (ClickHouse's engine, in process).

    chdb_http.py [--port P] [--data DIR]

Lets the project's Rust code (the `clickhouse` crate, compression off, validation off) and
plain curl run against a current ClickHouse engine without a server install. Prints
`listening on 127.0.0.1:PORT` once ready. Stop it with SIGTERM or SIGINT.

What it implements, following ClickHouse's HTTP interface:
- SQL from the `query` URL parameter and/or the POST body (concatenated when both are
  present); an `INSERT ... FORMAT F` in `query` with a body streams the body as data in F.
- `database` (or X-ClickHouse-Database) as the statement's current database.
- `default_format` (or X-ClickHouse-Format) for statements without a FORMAT clause; the crate
  asks for RowBinary this way, not with a FORMAT clause. Otherwise TabSeparated.
- `param_NAME` query parameters, in the URL or in a multipart/form-data body.
- Other URL parameters are applied as settings for that statement; unknown ones are ignored.
- Errors: HTTP 500, body `Code: N. DB::Exception: ...`, header X-ClickHouse-Exception-Code.
- One statement per request, as ClickHouse's HTTP interface requires.
- `GET /ping` and `GET /` answer `Ok.`. Credentials are accepted and ignored.
Not implemented: compressed request bodies (`decompress=1`), sessions, progress headers.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the work tree
from run_sql import split_statements  # noqa: E402

# URL parameters that steer the HTTP layer rather than the query: never sent as settings.
HTTP_ONLY_PARAMS = {
    "query", "database", "default_format", "user", "password", "quota_key", "role",
    "query_id", "session_id", "session_timeout", "session_check", "compress", "decompress",
    "enable_http_compression", "http_zlib_compression_level", "wait_end_of_query",
    "buffer_size", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "add_http_cors_header", "client_protocol_version",
    # `readonly` would forbid the SET that restores the session after the statement.
    "readonly",
}
INSERT_WITH_FORMAT = re.compile(r"^\s*(INSERT\b.*?)\s+FORMAT\s+(\w+)\s*$", re.I | re.S)
ERROR_CODE = re.compile(r"Code: (\d+)\.")
UNKNOWN_SETTING = 115


class ClickHouseError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def as_clickhouse_error(exc):
    """Turn a chdb exception into ClickHouse's `Code: N. DB::Exception: ...` form."""
    text = str(exc)
    m = ERROR_CODE.search(text)
    if m:
        # Streaming inserts prefix the server's message with their own words: drop them.
        return ClickHouseError(int(m.group(1)), text[m.start():].strip())
    return ClickHouseError(1001, f"Code: 1001. DB::Exception: {text.strip()} (STD_EXCEPTION)")


class Engine:
    """One chdb session; the lock makes `USE db` + settings + statement one atomic step."""

    def __init__(self, path):
        # The project's server config says <timezone>UTC</timezone>; the engine reads TZ.
        os.environ["TZ"] = "UTC"
        import chdb.session  # imported here so that `--help` works without the venv

        self.session = chdb.session.Session(path)
        self.lock = threading.Lock()

    def _run(self, sql, fmt="TabSeparated", params=None):
        try:
            return self.session.query(sql, fmt, params=params or None).bytes()
        except Exception as e:
            raise as_clickhouse_error(e) from None

    def execute(self, sql, database, fmt, settings, params, data=None):
        """Run one statement; with `data`, `sql` is `INSERT ... FORMAT F` and data its rows."""
        statements = split_statements(sql)
        if len(statements) != 1:
            what = "Empty query" if not statements else "Multi-statements are not allowed"
            raise ClickHouseError(62, f"Code: 62. DB::Exception: {what}. (SYNTAX_ERROR)")
        with self.lock:
            self._run(f"USE {quote_ident(database)}")
            applied = []
            try:
                for name, value in settings:
                    try:
                        self._run(f"SET {name} = {quote_str(value)}")
                        applied.append(name)
                    except ClickHouseError as e:
                        if e.code != UNKNOWN_SETTING:
                            raise
                if data is None:
                    return self._run(statements[0], fmt, params)
                return self._insert(statements[0], data)
            finally:
                for name in applied:
                    self._run(f"SET {name} = DEFAULT")

    def _insert(self, sql, data):
        m = INSERT_WITH_FORMAT.match(sql)
        if not m:
            raise ClickHouseError(62, "Code: 62. DB::Exception: a request body with data needs "
                                      "`INSERT ... FORMAT <format>` in the query parameter. (SYNTAX_ERROR)")
        try:
            with self.session.send_insert(m.group(1), m.group(2)) as inserter:
                if data:
                    inserter.append(data)
                inserter.finish()
        except Exception as e:
            raise as_clickhouse_error(e) from None
        return b""

    def close(self):
        with self.lock:
            self.session.close()


def quote_ident(name):
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_str(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_multipart(body, content_type):
    """Fields of a multipart/form-data body, as the crate sends `query` with `param_*`."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        return {}
    fields = {}
    for part in body.split(b"--" + m.group(1).encode()):
        head, sep, value = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        if sep and name:
            fields[name.group(1).decode()] = value[:-2] if value.endswith(b"\r\n") else value
    return fields


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the crate's connection pool expects
    server_version = "chdb-http"
    engine = None  # set in main()

    def setup(self):
        super().setup()
        # Replies are small: without this, Nagle's algorithm and delayed ACKs add ~40 ms to each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass  # quiet: query texts may carry request values

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path in ("/ping", "/") and not query:
            return self.reply(200, b"Ok.\n", "text/plain; charset=UTF-8")
        self.handle_query(b"")

    def do_POST(self):
        self.handle_query(self.read_body())

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def handle_query(self, body):
        url = urlsplit(self.path)
        args = dict(parse_qsl(url.query, keep_blank_values=True))
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            fields = parse_multipart(body, content_type)
            body = fields.pop("query", b"")
            args.update({k: v.decode() for k, v in fields.items()})
        database = args.get("database") or self.headers.get("X-ClickHouse-Database") or "default"
        fmt = args.get("default_format") or self.headers.get("X-ClickHouse-Format") or "TabSeparated"
        params = {k[len("param_"):]: v for k, v in args.items() if k.startswith("param_")}
        settings = [(k, v) for k, v in args.items()
                    if k not in HTTP_ONLY_PARAMS and not k.startswith("param_")
                    and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)]
        query = args.get("query", "")
        try:
            if args.get("decompress") == "1":
                raise ClickHouseError(1001, "Code: 1001. DB::Exception: the chdb shim does not "
                                            "accept compressed bodies: use Compression::None. (STD_EXCEPTION)")
            if query and INSERT_WITH_FORMAT.match(query):
                out = self.engine.execute(query, database, fmt, settings, params, data=body)
            else:
                sql = "\n".join(p for p in (query, body.decode("utf-8")) if p)
                out = self.engine.execute(sql, database, fmt, settings, params)
        except ClickHouseError as e:
            return self.reply(500, (str(e) + "\n").encode(), "text/plain; charset=UTF-8",
                              {"X-ClickHouse-Exception-Code": str(e.code)})
        except Exception as e:  # a bug or a malformed request: still answer like ClickHouse
            return self.reply(500, f"Code: 1001. DB::Exception: {e!r} (STD_EXCEPTION)\n".encode(),
                              "text/plain; charset=UTF-8", {"X-ClickHouse-Exception-Code": "1001"})
        self.reply(200, out, "application/octet-stream")

    def reply(self, status, body, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client closing an idle keep-alive connection is normal, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def stop(signum, frame):
    # SIGTERM ends serve_forever() the way Ctrl-C does, so the cleanup in main() always runs.
    raise KeyboardInterrupt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: pick a free one)")
    ap.add_argument("--data", help="chdb data directory, kept (default: a temporary one, removed on exit)")
    args = ap.parse_args()

    data = args.data or tempfile.mkdtemp(prefix="chdb-http-")
    os.makedirs(data, exist_ok=True)
    Handler.engine = Engine(data)
    server = Server(("127.0.0.1", args.port), Handler)

    signal.signal(signal.SIGTERM, stop)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        Handler.engine.close()
        if not args.data:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
