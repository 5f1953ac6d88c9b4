#!/usr/bin/env python3
"""The exporter's web pages (issue #17) over a real redis-server holding state written through
the queue protocol (scenefarm-ui-fixture) and real artifact files:
  HttpTest   the artifact endpoints, path refusals, the pages' headers, --web.disable-ui, auth;
  PagesTest  the pages in headless Chromium (DevTools protocol): overview, run with its
             thumbnails loaded, scene.
Run by ctest (tests/ui/CMakeLists.txt sets the binaries' paths)."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from farm import Chromium, Farm, basic, http, raw_get  # noqa: E402

RUN = "story"
FRAMES = 6


USER, PASSWORD = "alice", "s3cret"


def web_config(farm):
    import crypt  # libxcrypt: bcrypt as the web config wants
    path = os.path.join(farm.dir, "web.yml")
    with open(path, "w") as f:
        f.write("basic_auth_users:\n  %s: '%s'\n" %
                (USER, crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=32))))
    return path


class HttpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.farm = Farm(run=RUN, frames=FRAMES)
        # A file beside the artifacts directory that no URL may reach.
        cls.secret = os.path.join(cls.farm.dir, "secret.txt")
        with open(cls.secret, "w") as f:
            f.write("TOP-SECRET\n")

    @classmethod
    def tearDownClass(cls):
        cls.farm.close()

    def get(self, path, **kw):
        return http(self.farm.base, path, **kw)

    def test_listing_names_every_file_of_the_run(self):
        status, headers, body = self.get(f"/api/runs/{RUN}/files")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json")
        doc = json.loads(body)
        self.assertTrue(doc["exists"])
        paths = {f["path"]: f for f in doc["files"]}
        frames = [f for f in doc["files"] if f["kind"] == "image"]
        self.assertEqual(len(frames), FRAMES)
        self.assertEqual(paths["artifact-metadata.json"]["kind"], "metadata")
        self.assertEqual(paths["run-summary.txt"]["kind"], "summary")
        self.assertEqual(paths[f"{RUN}-ok/telemetry.json"]["scene"], f"{RUN}-ok")
        # One scene's files only.
        _, _, body = self.get(f"/api/runs/{RUN}/files?scene={RUN}-ok")
        self.assertTrue(all(f["scene"] == f"{RUN}-ok" for f in json.loads(body)["files"]))
        # A run without a directory is an empty listing, not an error.
        _, _, body = self.get("/api/runs/nothing-here/files")
        self.assertEqual(json.loads(body), {"run": "nothing-here", "exists": False, "files": []})

    def test_files_come_with_their_type_and_caching_headers(self):
        status, h, body = self.get(f"/api/runs/{RUN}/files/{RUN}-ok/{RUN}_00001_.png")
        self.assertEqual(status, 200)
        self.assertEqual(h["Content-Type"], "image/png")
        self.assertEqual(body[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(h["X-Content-Type-Options"], "nosniff")
        etag = h["ETag"]
        self.assertTrue(etag)
        status, _, body = self.get(f"/api/runs/{RUN}/files/{RUN}-ok/{RUN}_00001_.png",
                                   headers={"If-None-Match": etag})
        self.assertEqual((status, body), (304, b""))
        status, h, body = self.get(f"/api/runs/{RUN}/files/{RUN}-ok/{RUN}_00001_.png",
                                   headers={"Range": "bytes=1-3"})
        self.assertEqual((status, body), (206, b"PNG"))
        self.assertTrue(h["Content-Range"].startswith("bytes 1-3/"))
        status, h, body = self.get(f"/api/runs/{RUN}/files/artifact-metadata.json")
        self.assertEqual((status, h["Content-Type"]), (200, "application/json"))
        self.assertIn(f"{RUN}-ok", body.decode())
        status, h, body = self.get(f"/api/runs/{RUN}/files/run-summary.txt")
        self.assertEqual((status, h["Content-Type"]), (200, "text/plain"))
        self.assertIn(f"{RUN}-ok", body.decode())

    def test_validation_verdict_and_a_run_not_yet_assembled(self):
        status, _, body = self.get(f"/api/runs/{RUN}/validation")
        self.assertEqual(status, 200)
        doc = json.loads(body)
        self.assertTrue(doc["assembled"])
        self.assertEqual((doc["ok"], doc["violations"]), (True, []))
        # Breaking the contract is seen: a telemetry.json that is no JSON.
        broken = os.path.join(self.farm.artifacts, "broken", "s1")
        os.makedirs(broken)
        with open(os.path.join(self.farm.artifacts, "broken", "artifact-metadata.json"), "w") as f:
            f.write("{}")
        with open(os.path.join(broken, "telemetry.json"), "w") as f:
            f.write("not json")
        doc = json.loads(self.get("/api/runs/broken/validation")[2])
        self.assertEqual((doc["assembled"], doc["ok"]), (True, False))
        self.assertTrue(doc["violations"])
        doc = json.loads(self.get("/api/runs/not-assembled/validation")[2])
        self.assertEqual(doc, {"run": "not-assembled", "assembled": False})

    def assertRefused(self, status, body):
        self.assertNotEqual(status, 200)
        self.assertNotIn(b"TOP-SECRET", body)

    def test_paths_never_leave_the_artifacts_directory(self):
        port = self.farm.port
        base = f"/api/runs/{RUN}/files/"
        # "..", raw and percent-encoded, in the path and in the run name.
        for target in [base + "../../secret.txt", base + "%2e%2e/%2e%2e/secret.txt",
                       base + f"{RUN}-ok%2f..%2f..%2f..%2fsecret.txt",
                       "/api/runs/..%2fsecret.txt/files/x", "/api/runs/%2e%2e/files/secret.txt",
                       base + "..%5c..%5csecret.txt"]:
            with self.subTest(target=target):
                self.assertRefused(*raw_get(port, target))
        # Absolute: an empty first part.
        status, body = raw_get(port, base + "/" + self.secret.lstrip("/"))
        self.assertRefused(status, body)
        # NUL: civetweb ends the decoded path there; what is left stays inside.
        status, body = raw_get(port, base + "run-summary.txt%00/../../../secret.txt")
        self.assertNotIn(b"TOP-SECRET", body)
        # A symlink inside the run leading outside is refused; one leading inside is served.
        scene = os.path.join(self.farm.artifacts, RUN, f"{RUN}-ok")
        os.symlink(self.secret, os.path.join(scene, "escape.png"))
        os.symlink(f"{RUN}_00001_.png", os.path.join(scene, "inside.png"))
        listing = json.loads(self.get(f"/api/runs/{RUN}/files")[2])
        names = [f["name"] for f in listing["files"]]
        self.assertIn("inside.png", names)
        self.assertNotIn("escape.png", names)
        status, _, body = self.get(base + f"{RUN}-ok/escape.png")
        self.assertEqual(status, 403)
        self.assertIn(b"outside the artifacts directory", body)
        self.assertEqual(self.get(base + f"{RUN}-ok/inside.png")[0], 200)
        # A run directory that is itself a symlink out.
        os.symlink(self.farm.dir, os.path.join(self.farm.artifacts, "linked-run"))
        status, _, body = self.get("/api/runs/linked-run/files/secret.txt")
        self.assertRefused(status, body)
        status, _, body = self.get("/api/runs/linked-run/files")
        self.assertRefused(status, body)

    def test_pages_are_served_with_strict_headers(self):
        for path in ["/ui/", f"/ui/runs/{RUN}", f"/ui/scenes/{RUN}-ok", "/ui/queues/scenes",
                     "/ui/dead"]:
            with self.subTest(path=path):
                status, h, body = self.get(path)
                self.assertEqual(status, 200)
                self.assertEqual(h["Content-Type"], "text/html; charset=utf-8")
                self.assertIn("default-src 'self'", h["Content-Security-Policy"])
                self.assertEqual(h["X-Content-Type-Options"], "nosniff")
                self.assertIn(b'<script src="/ui/app.js"', body)
        status, h, _ = self.get("/ui/app.js")
        self.assertEqual((status, h["Content-Type"]), (200, "text/javascript; charset=utf-8"))
        self.assertEqual(self.get("/ui/app.css")[1]["Content-Type"], "text/css; charset=utf-8")
        self.assertEqual(self.get("/ui/nothing.js")[0], 404)
        self.assertEqual(self.get("/ui/", method="POST", body=b"")[0], 405)
        self.assertEqual(self.get(f"/api/runs/{RUN}/files", method="POST", body=b"")[0], 405)


class OptionsTest(unittest.TestCase):
    """--web.disable-ui, and the web config's basic auth in front of pages and files."""

    def test_disable_ui_and_basic_auth(self):
        farm = Farm(run=RUN, frames=1, exporter_args=["--web.disable-ui"])
        try:
            self.assertEqual(http(farm.base, "/ui/")[0], 404)
            self.assertEqual(http(farm.base, "/ui/app.js")[0], 404)
            # The files stay: they are API.
            self.assertEqual(http(farm.base, f"/api/runs/{RUN}/files")[0], 200)
            farm.start_exporter(["--web-config", web_config(farm)])
            png = f"/api/runs/{RUN}/files/{RUN}-ok/{RUN}_00001_.png"
            for path in ["/ui/", png]:
                with self.subTest(path=path):
                    self.assertEqual(http(farm.base, path)[0], 401)
                    self.assertEqual(http(farm.base, path, headers={
                        "Authorization": basic(USER, "wrong")})[0], 401)
                    self.assertEqual(http(farm.base, path, headers={
                        "Authorization": basic(USER, PASSWORD)})[0], 200)
        finally:
            farm.close()


class ComfyViewTest(unittest.TestCase):
    """Frames the exporter cannot find in the artifacts directory come through /view of a
    configured ComfyUI, for the names the scene's result lists only."""

    def test_frames_through_view_when_not_in_the_artifacts_directory(self):
        import shutil
        farm = Farm(run=RUN, frames=2, comfyui=True)
        try:
            scene = os.path.join(farm.artifacts, RUN, f"{RUN}-ok")
            out = os.path.join(farm.comfy_dir, "output")
            os.makedirs(out, exist_ok=True)
            name = f"{RUN}_00001_.png"
            with open(os.path.join(scene, name), "rb") as f:
                frame = f.read()
            path = f"/api/runs/{RUN}/files/{RUN}-ok/{name}"
            # Served from the artifacts directory while it is there.
            status, h, body = http(farm.base, path)
            self.assertEqual((status, h.get("X-Scenefarm-Source")), (200, None))
            # Gone from the artifacts directory (another host's disk): through /view.
            shutil.move(os.path.join(scene, name), os.path.join(out, name))
            status, h, body = http(farm.base, path)
            self.assertEqual((status, h["X-Scenefarm-Source"], h["Content-Type"]),
                             (200, "comfyui", "image/png"))
            self.assertEqual(body, frame)
            # A file ComfyUI has but the scene's result does not name is not fetched.
            shutil.copy(os.path.join(out, name), os.path.join(out, "other.png"))
            self.assertEqual(http(farm.base, f"/api/runs/{RUN}/files/{RUN}-ok/other.png")[0], 404)
            # Nor for a scene of another run, nor for an unknown scene.
            self.assertEqual(http(farm.base, f"/api/runs/other/files/{RUN}-ok/{name}")[0], 404)
            self.assertEqual(http(farm.base, f"/api/runs/{RUN}/files/nobody/{name}")[0], 404)
            # Unreadable here (permissions) is the same as absent: /view. Root reads anything,
            # so this part only runs as another user.
            if os.geteuid() != 0:
                second = f"{RUN}_00002_.png"
                shutil.copy(os.path.join(scene, second), os.path.join(out, second))
                os.chmod(os.path.join(scene, second), 0)
                status, h, _ = http(farm.base, f"/api/runs/{RUN}/files/{RUN}-ok/{second}")
                self.assertEqual((status, h["X-Scenefarm-Source"]), (200, "comfyui"))
        finally:
            farm.close()


    def test_run_page_shows_frames_through_view_when_the_run_directory_has_none(self):
        import shutil
        farm = Farm(run=RUN, frames=2, comfyui=True)
        b = None
        try:
            scene = os.path.join(farm.artifacts, RUN, f"{RUN}-ok")
            out = os.path.join(farm.comfy_dir, "output")
            os.makedirs(out, exist_ok=True)
            names = [f"{RUN}_0000{i}_.png" for i in (1, 2)]
            for name in names:  # on ComfyUI's disk only
                shutil.move(os.path.join(scene, name), os.path.join(out, name))
            b = Chromium(farm.dir)
            b.go(farm.base + f"/ui/runs/{RUN}")
            loaded = b.wait("""(() => {
                const imgs = [...document.querySelectorAll('#thumbs img')];
                return imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 0)
                    ? imgs.map((i) => i.getAttribute('src')) : null; })()""",
                            "thumbnails through /view")
            self.assertEqual(sorted(loaded),
                             sorted(f"/api/runs/{RUN}/files/{RUN}-ok/{n}" for n in names))
            self.assertEqual(b.console_errors(), [])
        finally:
            if b:
                b.close()
            farm.close()


class ActionsTest(unittest.TestCase):
    """Retry of a dead scene by a click, recorded with who did it; actions refused without
    auth, without the token and from another origin."""

    @classmethod
    def setUpClass(cls):
        cls.farm = Farm(run=RUN, frames=2)
        cls.farm.start_exporter(["--web-config", web_config(cls.farm), "--web.enable-actions"])
        cls.auth = {"Authorization": basic(USER, PASSWORD)}

    @classmethod
    def tearDownClass(cls):
        cls.farm.close()

    def test_refused_without_auth_token_or_from_another_origin(self):
        base, path = self.farm.base, f"/api/scenes/{RUN}-dead/retry"
        self.assertEqual(http(base, path, method="POST", body=b"{}")[0], 401)
        status, _, body = http(base, "/api/csrf", headers=self.auth)
        self.assertEqual(status, 200)
        token = json.loads(body)["token"]
        # Without the token, with a wrong one, and with the right one from another origin.
        for headers in [{}, {"X-Scenefarm-CSRF": "nope"},
                        {"X-Scenefarm-CSRF": token, "Origin": "http://elsewhere.test"}]:
            with self.subTest(headers=headers):
                status, _, _ = http(base, path, method="POST", body=b"{}",
                                    headers={**self.auth, **headers, "Content-Type": "application/json"})
                self.assertEqual(status, 403)
        # Nothing changed.
        scene = json.loads(http(base, f"/api/scenes/{RUN}-dead", headers=self.auth)[2])
        self.assertEqual(scene["state"], "dead")

    def test_pause_and_resume_a_queue_by_clicking(self):
        farm = self.farm
        b = Chromium(farm.dir)
        try:
            b.set_headers(self.auth)
            b.go(farm.base + "/ui/")
            pause = "#queues tr[data-queue=scenes] button[data-action=pause]"
            b.wait(f"!!document.querySelector('{pause}')", "the Pause button")
            b.js(f"document.querySelector('{pause}').click()")
            b.wait("!!document.querySelector('#queues tr[data-queue=scenes] .badge.paused')",
                   "the queue shown paused")
            queues = json.loads(http(farm.base, "/api/queues", headers=self.auth)[2])["queues"]
            self.assertTrue(next(q for q in queues if q["queue"] == "scenes")["paused"])
            resume = "#queues tr[data-queue=scenes] button[data-action=resume]"
            b.wait(f"!!document.querySelector('{resume}')", "the Resume button")
            b.js(f"document.querySelector('{resume}').click()")
            b.wait(f"!!document.querySelector('{pause}')", "the queue shown running")
            queues = json.loads(http(farm.base, "/api/queues", headers=self.auth)[2])["queues"]
            self.assertFalse(next(q for q in queues if q["queue"] == "scenes")["paused"])
        finally:
            b.close()

    def test_retry_of_a_dead_scene_by_clicking(self):
        farm = self.farm
        b = Chromium(farm.dir)
        try:
            b.set_headers(self.auth)
            b.go(farm.base + "/ui/dead")
            b.wait("Number(document.body.dataset.loaded || 0) >= 1", "first render")
            self.assertEqual(b.js("document.body.dataset.actions"), "on")
            button = f"#dead tr[data-scene=\"{RUN}-dead\"] button[data-action=retry]"
            b.wait(f"!!document.querySelector('{button}')", "the Retry button")
            b.js(f"document.querySelector('{button}').click()")
            b.wait(f"!document.querySelector('#dead tr[data-scene=\"{RUN}-dead\"]')",
                   "the scene left the dead letters")
            scene = json.loads(http(farm.base, f"/api/scenes/{RUN}-dead", headers=self.auth)[2])
            self.assertIn(scene["state"], ("pending", "delayed"))
            # Recorded with who did it (docs/api.md: "api:USER").
            self.assertTrue(any(h.get("by") == "api:" + USER for h in scene["history"]),
                            scene["history"])
        finally:
            b.close()


class PagesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.farm = Farm(run=RUN, frames=FRAMES)
        cls.browser = Chromium(cls.farm.dir)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.farm.close()

    def open(self, path):
        self.browser.go(self.farm.base + path)
        # Rendered from the API at least once (body[data-loaded] counts refreshes), or an error
        # shown (then the test fails with it at once).
        state = self.browser.wait("""Number(document.body.dataset.loaded || 0) >= 1 ? 'ok'
            : document.getElementById('notice').className === 'error'
              ? document.getElementById('notice').textContent : null""", "first render of " + path)
        self.assertEqual(state, "ok", path)

    def test_run_page_shows_its_frames_loaded(self):
        b = self.browser
        self.open(f"/ui/runs/{RUN}")
        loaded = b.wait(f"""(() => {{
            const imgs = [...document.querySelectorAll('#thumbs img')];
            return imgs.length === {FRAMES} && imgs.every((i) => i.complete && i.naturalWidth > 0)
                ? imgs.map((i) => i.naturalWidth) : null; }})()""", "every thumbnail loaded")
        self.assertEqual(loaded, [64] * FRAMES)
        self.assertEqual(b.js("document.querySelectorAll('#thumbs img[loading=lazy]').length"), FRAMES)
        b.wait("document.querySelector('#validation [data-verdict]')?.dataset.verdict === 'ok'",
               "the run's validation verdict")
        self.assertEqual(b.js("document.getElementById('metadata-link').getAttribute('href')"),
                         f"/api/runs/{RUN}/files/artifact-metadata.json")
        b.wait(f"document.getElementById('run-summary').textContent.includes('{RUN}-ok')",
               "run summary shown")
        self.assertEqual(b.console_errors(), [])

    def test_refresh_polls_without_reload_and_can_be_paused(self):
        b = self.browser
        self.open(f"/ui/runs/{RUN}")
        b.js("window.__marker = 1")  # gone if the page reloaded
        b.wait("Number(document.body.dataset.loaded) >= 2", "a second refresh")
        self.assertEqual(b.js("window.__marker"), 1)
        b.js("document.getElementById('refresh-toggle').click()")
        self.assertEqual(b.js("document.body.dataset.paused"), "1")
        self.assertEqual(b.js("document.getElementById('refresh-toggle').textContent"),
                         "Resume refresh")

    def test_overview_shows_queues_and_workers(self):
        b = self.browser
        self.open("/ui/")
        row = "#queues tr[data-queue=scenes]"
        b.wait(f"!!document.querySelector('{row}')", "the queue's row")
        cells = b.js(f"[...document.querySelectorAll('{row} td')].map((c) => c.textContent)")
        # pending 1 (RUN-next-1), delayed 0, leased 0, dead 1 (RUN-dead)
        self.assertEqual(cells[1:5], ["1", "0", "0", "1"])
        b.wait("!!document.querySelector('#workers tr[data-worker=\"ui-fixture-worker\"]')",
               "the fixture's worker")
        self.assertTrue(b.js(f"!!document.querySelector('#runs tr[data-run=\"{RUN}\"]')"))
        # Read-only: no action offered without --web.enable-actions and a signed-in user.
        self.assertEqual(b.js("document.body.dataset.actions"), "off")
        self.assertEqual(b.js("document.querySelectorAll('button[data-action]').length"), 0)

    def test_scene_page_shows_state_frames_fallback_notes_history_and_workflow(self):
        b = self.browser
        self.open(f"/ui/scenes/{RUN}-ok")
        b.wait("document.querySelector('#scene-state').textContent === 'succeeded'", "state")
        b.wait(f"""(() => {{ const i = [...document.querySelectorAll('#thumbs img')];
            return i.length === {FRAMES} && i.every((x) => x.complete && x.naturalWidth > 0); }})()""",
               "the scene's frames loaded")
        self.assertIn("Forced copy after stability retries",
                      b.js("document.querySelector('#fallback-notes .fallback').textContent"))
        self.assertTrue(b.js("document.querySelectorAll('#history-table tbody tr').length >= 2"))
        # The telemetry fields, each a term and its value.
        fields = b.js("""Object.fromEntries([...document.querySelectorAll('#telemetry dl dt')]
            .map((dt) => [dt.textContent, dt.nextElementSibling.textContent]))""")
        self.assertTrue(any(k.endswith("DurationSeconds") and v == "4.2" for k, v in fields.items()),
                        fields)
        self.assertIn("SaveImage", b.js("document.getElementById('workflow').textContent"))
        # The dead one: its reason.
        self.open(f"/ui/scenes/{RUN}-dead")
        b.wait("document.querySelector('#scene-reason').textContent.includes('prompt rejected')",
               "the dead scene's reason")

    def test_queue_page_by_state_with_search(self):
        b = self.browser
        self.open("/ui/queues/scenes?state=dead")
        b.wait(f"!!document.querySelector('#scenes tr[data-scene=\"{RUN}-dead\"]')", "dead row")
        self.open(f"/ui/queues/scenes?state=pending&q=next")
        b.wait(f"!!document.querySelector('#scenes tr[data-scene=\"{RUN}-next-1\"]')", "pending row")
        self.open(f"/ui/queues/scenes?state=pending&q=no-such-scene")
        b.wait("!!document.querySelector('#scenes tr.empty')", "no match")

    def test_data_is_text_never_markup(self):
        # A run name full of markup is shown as text: nothing is parsed out of it.
        b = self.browser
        name = "<img src=x onerror=alert(1)>"
        os.makedirs(os.path.join(self.farm.artifacts, name, "s"))
        from urllib.parse import quote
        self.open("/ui/runs/" + quote(name, safe=""))
        self.assertEqual(b.js("document.querySelector('h1').textContent"), "Run " + name)
        self.assertEqual(b.js("document.querySelectorAll('main img[src=x]').length"), 0)


if __name__ == "__main__":
    unittest.main()
