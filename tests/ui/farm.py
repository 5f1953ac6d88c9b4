"""Real parts for the web pages' tests and screenshots: redis-server, scenefarm-exporter and
headless Chromium driven over its DevTools protocol, each on a loopback port chosen free at run
time and stopped by PID. Every wait is for a condition, bounded by a deadline."""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import websocket  # Debian's python3-websocket

DEADLINE_S = 60  # generous: both cores may be busy


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, what, timeout=DEADLINE_S):
    """Polls pred() until it returns something truthy; raises naming `what` at the deadline."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # not yet (connection refused, no element)
            last = e
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not within {timeout} s (last: {last!r})")


def port_open(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Proc:
    def __init__(self, argv, log_path, env=None):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


class Farm:
    """redis-server + the fixture's state + scenefarm-exporter over it."""

    def __init__(self, run="story", frames=4, size=(64, 48), exporter_args=(), noise=False,
                 comfyui=False):
        self.dir = tempfile.mkdtemp(prefix="scenefarm-ui-")
        self.artifacts = os.path.join(self.dir, "artifacts")
        os.makedirs(self.artifacts)
        self.procs = []
        self.redis_port = free_port()
        redis_bin = os.environ.get("SCENEFARM_REDIS_SERVER") or "redis-server"
        self.procs.append(Proc([redis_bin, "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", self.dir],
                               os.path.join(self.dir, "redis.log")))
        wait_until(lambda: port_open(self.redis_port), "redis-server listening")
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        out = subprocess.run([os.environ["SCENEFARM_UI_FIXTURE_BIN"], self.redis_url, self.artifacts,
                              run, str(frames), str(size[0]), str(size[1]), "1" if noise else "0"],
                             capture_output=True, text=True, timeout=DEADLINE_S)
        if out.returncode != 0:
            raise RuntimeError("fixture failed: " + out.stderr)
        self.state = json.loads(out.stdout)
        self.comfy_url = ""
        if comfyui:  # the ComfyUI test server (tests/comfyui_server), output under comfy/output
            self.comfy_dir = os.path.join(self.dir, "comfy")
            os.makedirs(self.comfy_dir)
            port_file = os.path.join(self.comfy_dir, "port")
            self.procs.append(Proc([os.environ["SCENEFARM_TEST_SERVER_BIN"], "--port", "0",
                                    "--port-file", port_file, "--base-dir", self.comfy_dir],
                                   os.path.join(self.dir, "comfy.log")))
            wait_until(lambda: os.path.exists(port_file) and open(port_file).read().strip(),
                       "ComfyUI test server's port")
            self.comfy_url = "http://127.0.0.1:" + open(port_file).read().strip()
        self.exporter = None
        self.start_exporter(exporter_args)

    def start_exporter(self, extra=()):
        if self.exporter:
            self.exporter.stop()
            self.procs.remove(self.exporter)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.exporter = Proc([os.environ["SCENEFARM_EXPORTER_BIN"], "--listen",
                              f"127.0.0.1:{self.port}", "--redis-url", self.redis_url,
                              "--artifacts-dir", self.artifacts, "--comfyui-url", self.comfy_url,
                              "--gpu-source", "none", "--timeout-seconds", "2", *extra],
                             os.path.join(self.dir, "exporter.log"))
        self.procs.append(self.exporter)
        wait_until(lambda: port_open(self.port) or self.exporter.p.poll() is not None,
                   "exporter listening")
        if self.exporter.p.poll() is not None:
            raise RuntimeError("exporter exited: " + self.exporter.text())

    def close(self):
        for p in reversed(self.procs):
            p.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def http(base, path, method="GET", headers=None, body=None):
    """(status, headers, body bytes); any HTTP status is an answer."""
    req = urllib.request.Request(base + path, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def raw_get(port, target, headers=""):
    """A GET with the request target sent exactly as given (no normalisation by a client)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}"
                  "Connection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Chromium:
    """Headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, workdir, width=1280, height=900):
        binary = os.environ.get("SCENEFARM_CHROMIUM") or shutil.which("chromium")
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=workdir)
        self.port = free_port()
        self.proc = Proc([binary, "--headless", "--no-sandbox", "--disable-gpu",
                          "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                          "--disable-extensions", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--mute-audio",
                          f"--user-data-dir={self.profile}", f"--remote-debugging-port={self.port}",
                          "--remote-debugging-address=127.0.0.1",
                          f"--window-size={width},{height}", "about:blank"],
                         os.path.join(workdir, "chromium.log"))
        version = f"http://127.0.0.1:{self.port}/json/list"
        pages = wait_until(lambda: [t for t in json.loads(urllib.request.urlopen(version, timeout=5)
                                                          .read()) if t.get("type") == "page"],
                           "Chromium's DevTools endpoint")
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=DEADLINE_S,
                                              suppress_origin=True)
        self.next_id = 0
        self.events = []
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Network.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def send(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(method)

    def set_headers(self, headers):
        self.send("Network.setExtraHTTPHeaders", headers=headers)

    def js(self, expression):
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def go(self, url):
        self.send("Page.navigate", url=url)
        wait_until(lambda: self.js("location.href") == url and
                   self.js("document.readyState") == "complete", "page load " + url)

    def wait(self, expression, what=None, timeout=DEADLINE_S):
        return wait_until(lambda: self.js(expression), what or expression, timeout)

    def console_errors(self):
        return [e for e in self.events if e.get("method") == "Runtime.exceptionThrown"]

    def screenshot(self, path):
        r = self.send("Page.captureScreenshot", format="png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.stop()
