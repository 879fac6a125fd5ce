#!/usr/bin/env python3
"""Fault-injecting HTTP proxy for the S3 tests (python3 stdlib only).

    faultproxy.py UPSTREAM_PORT [--port-file FILE] [--s3rver-data DIR]
                  [--latency-ms N] [--bw-mbps N] [--sendfile]

Listens on a free 127.0.0.1 port (written to --port-file, and printed) and
forwards every request to 127.0.0.1:UPSTREAM_PORT (s3rver), keeping
connections alive. It counts what it sends back and can break responses on
purpose. Control endpoints (not forwarded):

    GET  /__proxy/stats   {"requests": N, "body_bytes": N, "gets": N, "faults": N,
                           "conns": N, "max_conns": N, "active": N, "max_active": N}
                          conns: client connections open now; active: requests
                          being answered now; max_*: the most seen since reset
    POST /__proxy/reset   zero the counters and the request log
    POST /__proxy/plan    JSON body, replaces the fault plan:
        {"every": N,             apply the fault to every Nth data request
         "fault": "503" | "slowdown" | "500" | "reset" | "truncate" | "stall"
                | "garbage_range" | "drop_header" | "error200" | "wrong_region",
         "limit": N,             stop after N faults (default unlimited)
         "stall_s": S,           seconds a "stall" holds the body (default 30)
         "delay_ms": N,          delay every response
         "methods": ["GET"],     which methods count as data requests (default GET)
         "path_has": "uploadId="} only requests whose path+query contain this
         "latency_ms": N,        WAN-like: wait N ms before answering each data
                                 request (first-byte latency; default --latency-ms)
         "bw_mbps": N}           WAN-like: cap each connection's body stream, both
                                 directions, at N MB/s (10^6; default --bw-mbps)
    GET  /__proxy/log     one line per forwarded request: METHOD PATH RANGE STATUS BODYLEN

With --sendfile (and --s3rver-data), a GET of a whole object or a range is
answered with s3rver's headers and the bytes of s3rver's own file, sent by
sendfile(2): the benchmarks use it so that the local S3 does not take the
cores the client is measured on.

It also enforces If-Match on GET (s3rver ignores it): a request whose
If-Match differs from the object's ETag gets 412, as S3 answers. With
--s3rver-data (s3rver's -d directory) it implements the two multipart calls
s3rver 3.7.1 lacks, from s3rver's own upload directories:
AbortMultipartUpload (DELETE /bucket/key?uploadId=ID: the parts are removed,
204) and ListMultipartUploads (GET /bucket?uploads: <Upload><Key>,
<UploadId> per pending upload).
"""
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import urllib.parse
from xml.sax.saxutils import escape
import sys
import threading
import time

LOCK = threading.Lock()
STATE = {"requests": 0, "body_bytes": 0, "gets": 0, "faults": 0, "data_seen": 0,
         "conns": 0, "max_conns": 0, "active": 0, "max_active": 0}
PLAN = {}
# The WAN-like shape from the command line; a plan's latency_ms/bw_mbps win.
SHAPE = {"latency_ms": 0, "bw_mbps": 0}
CHUNK = 256 * 1024  # big enough to keep the proxy off the CPU, small for pacing


def shape_of(plan):
    lat = plan.get("latency_ms", SHAPE["latency_ms"])
    bw = plan.get("bw_mbps", SHAPE["bw_mbps"])
    return float(lat or 0) / 1000.0, float(bw or 0) * 1e6


class Pacer:
    """Holds a byte stream to RATE bytes/s (0 = unlimited): after n bytes the
    stream may not be ahead of start + n / rate. One per connection, so many
    connections together go faster, as on a real WAN to S3."""

    def __init__(self, rate):
        self.rate = rate
        self.t0 = time.monotonic()
        self.n = 0

    def account(self, n):
        if not self.rate:
            return
        self.n += n
        ahead = self.t0 + self.n / self.rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)

LOG = []
DATA = None
SENDFILE = False


def upstream_conn():
    return http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=120)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        with LOCK:
            STATE["conns"] += 1
            STATE["max_conns"] = max(STATE["max_conns"], STATE["conns"])

    def finish(self):
        try:
            super().finish()
        finally:
            with LOCK:
                STATE["conns"] -= 1

    def _write_body(self, data, pacer):
        """Send data at most at the pacer's rate, in CHUNK pieces."""
        view = memoryview(data)
        for i in range(0, len(view), CHUNK):
            piece = view[i:i + CHUNK]
            self.wfile.write(piece)
            self._count(len(piece))
            pacer.account(len(piece))

    def _read_body(self, n, pacer):
        out = bytearray()
        while len(out) < n:
            piece = self.rfile.read(min(CHUNK, n - len(out)))
            if not piece:
                break
            out += piece
            pacer.account(len(piece))
        return bytes(out)

    def _reply(self, status, body, ctype="application/json", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":  # a body after a HEAD answer would poison keep-alive
            self.wfile.write(body)

    def _control(self):
        global PLAN
        path = self.path
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if path == "/__proxy/stats":
            with LOCK:
                out = {k: v for k, v in STATE.items() if k != "data_seen"}
                out["active"] -= 1  # not this stats request itself
            self._reply(200, json.dumps(out).encode())
        elif path == "/__proxy/reset":
            with LOCK:
                for k in STATE:
                    if k not in ("conns", "active"):  # those are live, not history
                        STATE[k] = 0
                STATE["max_conns"] = STATE["conns"]
                STATE["max_active"] = 0
                LOG.clear()
            self._reply(200, b"{}")
        elif path == "/__proxy/plan":
            with LOCK:
                PLAN = json.loads(body or b"{}")
                STATE["data_seen"] = 0
                STATE["faults"] = 0
            self._reply(200, b"{}")
        elif path == "/__proxy/log":
            with LOCK:
                text = "".join(LOG)
            self._reply(200, text.encode(), "text/plain")
        else:
            self._reply(404, b"{}")

    def _pick_fault(self):
        with LOCK:
            STATE["requests"] += 1
            if self.command == "GET":
                STATE["gets"] += 1
            plan = dict(PLAN)
            methods = plan.get("methods", ["GET"])
            if self.command not in methods or not plan.get("fault"):
                return None, plan
            if plan.get("path_has") and plan["path_has"] not in self.path:
                return None, plan
            STATE["data_seen"] += 1
            every = max(1, int(plan.get("every", 1)))
            limit = plan.get("limit")
            if STATE["data_seen"] % every != 0:
                return None, plan
            if limit is not None and STATE["faults"] >= int(limit):
                return None, plan
            STATE["faults"] += 1
            return plan["fault"], plan

    def _count(self, n):
        with LOCK:
            STATE["body_bytes"] += n

    def _multipart_emulation(self):
        """AbortMultipartUpload and ListMultipartUploads for s3rver."""
        if not DATA:
            return False
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        parts = u.path.lstrip("/").split("/", 1)
        bucket = urllib.parse.unquote(parts[0])
        updir = os.path.join(DATA, bucket, "._S3rver_uploads")
        if self.command == "DELETE" and "uploadId" in q and len(parts) == 2:
            uid = q["uploadId"][0]
            d = os.path.join(updir, os.path.basename(uid))
            if not os.path.isdir(d):
                body = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchUpload"
                        b"</Code><Message>The specified upload does not exist</Message></Error>")
                self._reply(404, body, "application/xml")
            else:
                shutil.rmtree(d, ignore_errors=True)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
            with LOCK:
                LOG.append("DELETE %s - emulated\n" % self.path)
            return True
        if self.command == "GET" and "uploads" in q and (len(parts) == 1 or not parts[1]):
            items = []
            if os.path.isdir(updir):
                for uid in sorted(os.listdir(updir)):
                    try:
                        with open(os.path.join(updir, uid, "key")) as f:
                            key = f.read()
                    except OSError:
                        key = ""
                    items.append("<Upload><Key>%s</Key><UploadId>%s</UploadId></Upload>" %
                                 (escape(key), escape(uid)))
            body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListMultipartUploadsResult>"
                    "<Bucket>%s</Bucket>%s</ListMultipartUploadsResult>" %
                    (escape(bucket), "".join(items))).encode()
            self._reply(200, body, "application/xml")
            return True
        return False

    def _forward(self):
        with LOCK:
            STATE["active"] += 1
            STATE["max_active"] = max(STATE["max_active"], STATE["active"])
        try:
            self._forward1()
        finally:
            with LOCK:
                STATE["active"] -= 1

    def _forward1(self):
        if self.path.startswith("/__proxy/"):
            return self._control()
        with LOCK:
            latency, rate = shape_of(PLAN)
        pacer = Pacer(rate)
        n = int(self.headers.get("Content-Length") or 0)
        body = self._read_body(n, pacer) if n else None
        fault, plan = self._pick_fault()
        if not fault and self._multipart_emulation():
            return
        if plan.get("delay_ms"):
            time.sleep(int(plan["delay_ms"]) / 1000.0)
        if latency > 0:
            time.sleep(latency)  # the round trip before the first byte of the answer
        if fault == "reset":
            # Abort the connection with an RST, before any response.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.close_connection = True
            self.connection.close()
            return
        if fault == "wrong_region":
            # What S3 answers a HEAD sent to the wrong regional endpoint.
            return self._reply(301, b"", "application/xml", {"x-amz-bucket-region": "eu-west-1"})
        if fault == "error200":
            # CompleteMultipartUpload's documented failure mode: 200 + <Error>.
            xml = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<Error><Code>InternalError"
                   b"</Code><Message>injected by faultproxy</Message></Error>")
            return self._reply(200, xml, "application/xml")
        if fault in ("503", "slowdown", "500"):
            code = {"503": 503, "slowdown": 503, "500": 500}[fault]
            xml = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code>"
                   "<Message>injected by faultproxy</Message></Error>" %
                   ("SlowDown" if fault == "slowdown" else
                    "InternalError" if code == 500 else "ServiceUnavailable")).encode()
            return self._reply(code, xml, "application/xml")
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("connection", "keep-alive", "proxy-connection")}
        conn = upstream_conn()
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            ifm = self.headers.get("If-Match")
            etag = resp.getheader("ETag")
            if (self.command == "GET" and not fault and resp.status in (200, 206)
                    and resp.getheader("Content-Length") is not None and not (ifm and etag and ifm.strip() != etag.strip())):
                # The common case streams: the body goes on while s3rver still
                # sends it, as S3's own first byte does not wait for the last.
                return self._stream(resp, Pacer(rate), conn)
            data = resp.read() if self.command != "HEAD" else b""
        except Exception as e:  # upstream down: 502
            return self._reply(502, str(e).encode(), "text/plain")
        finally:
            conn.close()
        status = resp.status
        rheaders = [(k, v) for k, v in resp.getheaders()
                    if k.lower() not in ("connection", "keep-alive", "transfer-encoding",
                                         "content-length")]
        etag = resp.getheader("ETag")
        ifm = self.headers.get("If-Match")
        if self.command == "GET" and ifm and etag and ifm.strip() != etag.strip() \
                and status in (200, 206):
            status, data = 412, (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>"
                                 b"PreconditionFailed</Code><Message>At least one of the "
                                 b"pre-conditions you specified did not hold</Message></Error>")
            rheaders = [("Content-Type", "application/xml")]
        with LOCK:
            LOG.append("%s %s %s %d %d\n" % (self.command, self.path,
                                             self.headers.get("Range", "-"), status,
                                             len(body or b"")))
        if fault == "garbage_range":
            rheaders = [(k, v) for k, v in rheaders if k.lower() != "content-range"]
            rheaders.append(("Content-Range", "bytes 0-%d/999999999999" % max(len(data) - 1, 0)))
        if fault == "drop_header":
            rheaders = [(k, v) for k, v in rheaders if k.lower() != "content-range"]
            status = 200 if status == 206 else status
        self.send_response(status)
        for k, v in rheaders:
            self.send_header(k, v)
        clen = len(data) if self.command != "HEAD" else int(resp.getheader("Content-Length") or 0)
        self.send_header("Content-Length", str(clen))
        self.end_headers()
        if self.command == "HEAD":
            return
        pacer = Pacer(rate)
        if fault == "truncate" and len(data) > 1:
            half = data[: len(data) // 2]
            self.wfile.write(half)
            self._count(len(half))
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "stall" and len(data) > 1:
            half = data[: len(data) // 2]
            self.wfile.write(half)
            self._count(len(half))
            self.wfile.flush()
            time.sleep(float(plan.get("stall_s", 30)))
            self.close_connection = True
            return
        self._write_body(data, pacer)

    def _object_file(self, resp):
        """With --sendfile: s3rver's own file of the object this GET answers,
        and the offset the answer starts at, or None."""
        if not (SENDFILE and DATA):
            return None
        u = urllib.parse.urlsplit(self.path)
        parts = u.path.lstrip("/").split("/", 1)
        if len(parts) != 2 or not parts[1] or u.query:
            return None
        # s3rver's FilesystemStore keeps the object at BUCKET/KEY._S3rver_object.
        path = os.path.join(DATA, urllib.parse.unquote(parts[0]),
                            urllib.parse.unquote(parts[1]) + "._S3rver_object")
        start = 0
        if resp.status == 206:
            m = re.match(r"bytes (\d+)-(\d+)/(\d+)", resp.getheader("Content-Range") or "")
            if not m:
                return None
            start = int(m.group(1))
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        return fd, start

    def _stream(self, resp, pacer, conn):
        with LOCK:
            LOG.append("%s %s %s %d %d\n" % (self.command, self.path,
                                             self.headers.get("Range", "-"), resp.status, 0))
        obj = self._object_file(resp)
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "keep-alive", "transfer-encoding"):
                self.send_header(k, v)
        self.end_headers()
        if obj:
            return self._sendfile(resp, obj, pacer, conn)
        while True:
            piece = resp.read(CHUNK)
            if not piece:
                break
            self.wfile.write(piece)
            self._count(len(piece))
            pacer.account(len(piece))

    def _sendfile(self, resp, obj, pacer, conn):
        """The body from s3rver's file by sendfile(2): the bytes s3rver would
        send, at no CPU cost to the machine under test (s3rver spends about a
        CPU second per 256 MB on a GET; real S3 spends none of the client's)."""
        fd, off = obj
        left = int(resp.getheader("Content-Length"))
        conn.close()  # s3rver stops reading its file when the socket goes
        try:
            while left > 0:
                n = os.sendfile(self.connection.fileno(), fd, off, min(CHUNK, left))
                if n <= 0:
                    break
                off += n
                left -= n
                self._count(n)
                pacer.account(n)
        finally:
            os.close(fd)
        if left:
            self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # clients open many connections at once (issue 15)


def main():
    global UPSTREAM, DATA
    args = sys.argv[1:]
    UPSTREAM = int(args[0])
    if "--s3rver-data" in args:
        DATA = args[args.index("--s3rver-data") + 1]
    port_file = None
    global SENDFILE
    SENDFILE = "--sendfile" in args
    if "--latency-ms" in args:
        SHAPE["latency_ms"] = float(args[args.index("--latency-ms") + 1])
    if "--bw-mbps" in args:
        SHAPE["bw_mbps"] = float(args[args.index("--bw-mbps") + 1])
    if "--port-file" in args:
        port_file = args[args.index("--port-file") + 1]
    srv = Server(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    if port_file:
        with open(port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.rename(port_file + ".tmp", port_file)
    print(port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
