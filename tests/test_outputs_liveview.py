"""Live view: the HTTP routes, the MJPEG stream and the page in a real headless Chromium, fed real results.

Frames come from the committed photos through the real pipeline. The browser
test drives Debian's /usr/bin/chromium over the DevTools protocol (pip
websocket-client) and is skipped, with the reason, when either is missing.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.frame.annotate import GENDER_COLORS_BGR, annotate, label_text
from edge.outputs.base import OutputError
from edge.outputs.liveview import LiveViewOutput, LiveViewSettings
from tests.chromium import chromium_binary
from tests.conftest import WAIT_S, Clock, tracked, wait_for


@pytest.fixture(scope="module")
def frames(pipeline_factory, samples):
    """Real (image, result) pairs: astronaut (one face, 512 px wide) then two_people (two faces, 1126 px)."""
    pipeline = pipeline_factory()
    pairs = tracked(pipeline, samples / "astronaut.jpg") + tracked(pipeline, samples / "two_people.jpg")
    assert all(result.faces for _, result in pairs)
    return pairs


@pytest.fixture
def live():
    outputs: list[LiveViewOutput] = []

    def start(clock=None, **settings) -> LiveViewOutput:
        output = LiveViewOutput(LiveViewSettings(enabled=True, port=0, **settings), clock=clock or time.monotonic)
        output.start()
        outputs.append(output)
        return output

    yield start
    for output in outputs:
        output.close()


def get(output: LiveViewOutput, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{output.port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


class StreamReader:
    """A viewer of /stream.mjpg that parses the multipart parts."""

    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.connection.request("GET", "/stream.mjpg")
        self.response = self.connection.getresponse()

    def next_jpeg(self) -> bytes:
        fp = self.response.fp
        line = fp.readline()
        while line in (b"\r\n", b"\n"):
            line = fp.readline()
        assert line.strip() == b"--FRAME", line
        headers = {}
        while (line := fp.readline().strip()):
            key, value = line.decode().split(":", 1)
            headers[key.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        data = fp.read(int(headers["content-length"]))
        assert fp.read(2) == b"\r\n"
        return data

    def close(self) -> None:
        self.connection.close()


def test_a_port_in_use_is_one_clear_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        output = LiveViewOutput(LiveViewSettings(enabled=True, port=port))
        with pytest.raises(OutputError) as error:
            output.start()
    assert str(error.value) == f"live view: port {port} on 127.0.0.1 is in use"


def test_an_address_that_is_not_ours_is_reported():
    with socket.socket() as probe:
        try:
            probe.bind(("192.0.2.1", 0))
        except OSError:
            pass
        else:
            pytest.skip("this host allows binding non-local addresses (net.ipv4.ip_nonlocal_bind)")
    output = LiveViewOutput(LiveViewSettings(enabled=True, host="192.0.2.1", port=0))  # TEST-NET-1
    with pytest.raises(OutputError, match=r"^live view: cannot listen on 192\.0\.2\.1:0 \(.+\)$"):
        output.start()


def test_status_json_reports_the_pipeline_results(live, frames):
    clock = Clock(1000.0)
    output = live(clock=clock)
    start = clock.t
    for image, result in frames[:3]:
        clock.t += 0.25
        output.update(image, result)
    status, content_type, body = get(output, "/status.json")
    assert status == 200 and content_type == "application/json"
    data = json.loads(body)
    last = frames[2][1]
    assert data["frame"] == last.index and data["frames"] == 3
    assert data["faces"] == len(last.faces)
    assert data["tracks"] == [{"track": f.track, "emotion": f.emotion, "confidence": round(f.emotion_confidence, 4),
                               "gender": f.gender, "gender_confidence": round(f.gender_confidence, 4),
                               "box": list(f.box)} for f in last.faces]
    assert data["fps"] == pytest.approx(4.0)  # 3 frames 0.25 s apart
    assert data["uptime_s"] == pytest.approx(clock.t - start)
    assert set(data["latency_ms"]) == set(last.timings_ms)
    for stage, value in data["latency_ms"].items():
        median = float(np.median([r.timings_ms[stage] for _, r in frames[:3]]))
        assert value == pytest.approx(median, abs=0.01)
    assert data["viewers"] == 0 and (data["width"], data["height"]) == (last.width, last.height)


def test_status_before_any_frame(live):
    data = json.loads(get(live(), "/status.json")[2])
    assert data["frame"] is None and data["faces"] == 0 and data["tracks"] == [] and data["fps"] == 0


def test_the_page_and_unknown_paths(live):
    output = live()
    status, content_type, body = get(output, "/")
    page = body.decode()
    assert status == 200 and content_type.startswith("text/html")
    assert '<img id="stream"' in page and 'fetch("/status.json"' in page and "fetch(`/frame.jpg?after=" in page
    assert "<h1>face-emotion live view</h1>" in page and "status updates" not in page
    b, g, r = GENDER_COLORS_BGR["man"]  # the legend's swatches are the overlay's colours
    assert f'rgb({r},{g},{b})"></span>man' in page
    assert "smoothed probability (as on the picture)" in page
    assert get(output, "/nothing")[0] == 404


def frame_jpg(output: LiveViewOutput, after: int) -> tuple[int, dict, np.ndarray | None]:
    """GET /frame.jpg?after=: (status, the faces header as JSON, the decoded picture)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{output.port}/frame.jpg?after={after}", timeout=30) as response:
        if response.status != 200:
            return response.status, {}, None
        faces = json.loads(response.headers["X-Frame-Faces"]) | {"seq": int(response.headers["X-Frame-Seq"])}
        return 200, faces, cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR)


def page_request(output: LiveViewOutput, after: int, feed) -> tuple[int, dict, np.ndarray | None]:
    """A page's ``/frame.jpg?after=`` request: once it waits (counted as a viewer), ``feed()`` runs; its answer."""
    answers: list = []
    fetcher = threading.Thread(target=lambda: answers.append(frame_jpg(output, after)), daemon=True)
    fetcher.start()
    wait_for(lambda: output.hub.viewers == 1, f"a page's request (after={after}) to wait for a frame")
    feed()
    fetcher.join(timeout=WAIT_S)
    assert answers, f"no answer to after={after}"
    return answers[0]


def test_a_frame_comes_with_the_faces_drawn_on_it(live, frames):
    """The page's table and the picture's labels come from one response: the same numbers for a face."""
    clock = Clock(1000.0)
    output = live(clock=clock, max_fps=4)
    (first_image, first), (second_image, second) = frames[0], frames[3]  # astronaut, then two_people
    status, faces, picture = page_request(output, 0, lambda: output.update(first_image, first))
    clock.t += 0.01  # sooner than max_fps allows: not handed to the page
    output.update(second_image, second)
    assert status == 200 and faces["seq"] == 1 and (faces["frame"], faces["width"]) == (first.index, first.width)
    assert picture.shape == first_image.shape
    assert len(faces["tracks"]) == len(first.faces) != len(second.faces)
    for track, face in zip(faces["tracks"], first.faces):  # the label drawn on the picture carries the same number
        assert f"{track['emotion']} {track['confidence']:.2f} / {track['gender']}" in label_text(face)
    assert json.loads(get(output, "/status.json")[2])["width"] == second.width  # the statistics: the newest frame
    clock.t += 1.0
    _, following, _ = page_request(output, faces["seq"], lambda: output.update(second_image, second))
    assert following["seq"] == 2 and following["width"] == second.width
    assert get(output, "/frame.jpg?after=x")[0] == 400


@pytest.mark.parametrize("after", [0, 999])
def test_a_new_page_or_one_from_before_a_restart_gets_the_next_frame_not_an_old_one(live, frames, after):
    """after=0 (a new page) must not get the cached picture; after=999 (the server restarted) must not wait."""
    clock = Clock(1000.0)
    output = live(clock=clock, max_fps=100)
    (old_image, old), (new_image, new) = frames[0], frames[3]
    _, cached, _ = page_request(output, 0, lambda: output.update(old_image, old))
    assert cached["width"] == old.width  # the hub now holds this picture

    def newer_frame() -> None:
        clock.t += 1.0
        output.update(new_image, new)

    status, faces, _ = page_request(output, after, newer_frame)
    assert status == 200 and faces["width"] == new.width


def test_the_daemon_tells_the_page_what_it_runs(samples):
    """The real daemon on the committed photos: source, model files and detector reach /status.json."""
    from edge.detectors import DetectorSettings
    from edge.frame.pipeline import ModelSettings
    from edge.outputs.eventlog import EventLogSettings
    from edge.outputs.leds import LedSettings
    from edge.outputs.registry import OutputsSettings
    from edge.service.config import CameraSettings, Config
    from edge.service.daemon import Daemon
    from edge.service.notify import Notifier

    root = Path(__file__).resolve().parents[1]
    config = Config(camera=CameraSettings(source="images", path=str(samples)),
                    models=ModelSettings(dir=str(root / "models")), detector=DetectorSettings(backend="blazeface"),
                    outputs=OutputsSettings(leds=LedSettings(enabled=False), event_log=EventLogSettings(enabled=False),
                                            live_view=LiveViewSettings(enabled=True, port=0)))
    daemon = Daemon(config, Notifier(use_systemd_python=False))
    try:
        assert daemon.start() == 0
        (output,) = [o for o in daemon.outputs if isinstance(o, LiveViewOutput)]
        running = json.loads(get(output, "/status.json")[2])["running"]
    finally:
        daemon.shutdown()
    images = len([p for p in samples.iterdir() if p.suffix.lower() in (".jpg", ".png")])
    assert running == {"source": f"images {samples} ({images} file(s))",
                       "emotion_model": "joint_mini_xception_int8.tflite",
                       "gender_model": "joint_mini_xception_int8.tflite", "detector": "blazeface (full range, int8)"}


def test_what_is_running_is_served_and_missing_fields_are_left_out(live):
    output = live()
    assert json.loads(get(output, "/status.json")[2])["running"] == {}
    output.describe({"source": "video file clip.mp4 (looped)", "emotion_model": "e.tflite", "detector": ""})
    assert json.loads(get(output, "/status.json")[2])["running"] == {"source": "video file clip.mp4 (looped)",
                                                                     "emotion_model": "e.tflite"}


def test_nothing_is_encoded_or_copied_while_nobody_watches(live, frames):
    output = live()
    for image, result in frames * 5:
        output.update(image, result)
    assert output.hub.encoded == 0 and output.hub.seq == 0 and output.hub.frame is None


def test_the_stream_carries_annotated_frames(live, frames):
    output = live(max_fps=30)
    reader = StreamReader(output.port)
    assert reader.response.status == 200
    assert reader.response.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=FRAME"
    wait_for(lambda: output.hub.viewers == 1, "the viewer to be registered")
    image, result = frames[3]  # two_people
    stop = threading.Event()

    def feed():
        while not stop.is_set():
            output.update(image, result)
            time.sleep(0.02)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        decoded = [cv2.imdecode(np.frombuffer(reader.next_jpeg(), np.uint8), cv2.IMREAD_COLOR) for _ in range(3)]
    finally:
        stop.set()
        feeder.join()
        reader.close()
    expected = annotate(image, result)
    for frame in decoded:
        assert frame.shape == image.shape
        below_stats = (slice(80, None), slice(None))  # the fps text in the corner differs frame to frame
        diff = np.abs(frame[below_stats].astype(int) - expected[below_stats].astype(int)).mean()
        assert diff < 4, diff
    # the boxes are really in the stream: the box edge is far closer to the box colour than the photo is
    x, y, w, h = result.faces[0].box
    edge = decoded[-1][y + 5:y + h - 5, x].astype(int)
    box_colour = np.array(expected[y + h // 2, x], int)
    assert np.abs(edge - box_colour).mean() < np.abs(image[y + 5:y + h - 5, x].astype(int) - box_colour).mean()


def test_max_fps_limits_the_frames_handed_to_viewers(live, frames):
    clock = Clock(1000.0)
    output = live(clock=clock, max_fps=4)  # one frame every 0.25 s of (fake) time
    reader = StreamReader(output.port)
    try:
        wait_for(lambda: output.hub.viewers == 1, "the viewer to be registered")
        image, result = frames[0]
        for _ in range(32):  # 2 s at 16 fps
            output.update(image, result)
            clock.t += 0.0625
        assert output.hub.seq == 8
    finally:
        reader.close()


def test_a_viewer_that_stops_reading_never_blocks_update_and_close_cuts_it(live, frames):
    clock = Clock(1000.0)
    output = live(clock=clock, max_fps=60)
    viewer = socket.create_connection(("127.0.0.1", output.port))
    viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    viewer.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    _, result = frames[3]
    # noise does not compress: each JPEG is megabytes, more than the socket buffers hold, so the
    # stream thread blocks writing the first one to a viewer that reads nothing
    noise = np.random.default_rng(0).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
    try:
        wait_for(lambda: output.hub.viewers == 1, "the viewer to be registered")
        for _ in range(50):
            clock.t += 1.0
            output.update(noise, result)
        assert output.hub.seq == 50  # update() handed every frame and returned each time
        wait_for(lambda: output.hub.encoded >= 1, "the stream thread to take a frame")
        time.sleep(0.5)  # let it get stuck in the write (no assertion on time)
        for _ in range(50):
            clock.t += 1.0
            output.update(noise, result)
        assert output.hub.seq == 100
        assert output.hub.encoded < 100  # frames nobody could take were dropped, not queued
        thread = output.thread
        output.close()
        assert not thread.is_alive()
        # the stream thread, blocked writing to that viewer, was cut loose by close() and has finished
        wait_for(lambda: output.hub.viewers == 0 and not output.hub.connections, "the stream thread to finish")
    finally:
        viewer.close()


def test_close_stops_serving(live, frames):
    output = live()
    port = output.port
    assert get(output, "/status.json")[0] == 200
    output.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    output.close()  # twice is fine


PAGE_STATE = """JSON.stringify({
  width: document.getElementById("stream").naturalWidth,
  pageWidth: document.body.clientWidth,
  imgWidth: document.getElementById("stream").clientWidth,
  heading: document.querySelector("h1").textContent,
  legend: document.getElementById("legend").textContent,
  running: document.getElementById("running").textContent,
  note: document.getElementById("table-note").textContent,
  page: document.body.innerText,
  updates: window.statusUpdates || 0,
  summary: document.getElementById("summary").textContent,
  rows: Array.from(document.querySelectorAll("#faces tr")).map(r => r.textContent),
  cells: Array.from(document.querySelectorAll("#faces tr")).map(r => Array.from(r.cells).map(c => c.textContent)),
  status: window.lastStatus || null,
  frame: window.lastFrame || null
})"""


@pytest.mark.skipif(chromium_binary() is None, reason="no chromium (Debian: apt-get install chromium)")
def test_the_page_shows_the_stream_and_live_statistics_in_chromium(browser, live, frames):
    output = live(max_fps=10)
    stop = threading.Event()

    def feed():  # the frame loop: astronaut frames, then two_people frames, round and round
        i = 0
        while not stop.is_set():
            image, result = frames[(i // 20) % 2 * 3 + i % 3]
            output.update(image, result)
            i += 1
            time.sleep(0.03)

    feeder = threading.Thread(target=feed, daemon=True)
    output.describe({"source": "images samples (7 file(s))", "emotion_model": "emotion_mini_xception_int8.tflite",
                     "gender_model": "gender_mini_xception_int8.tflite"})  # no detector: the page says so
    feeder.start()
    page = browser(output.url)
    try:
        def state() -> dict:
            value = page.evaluate(PAGE_STATE)  # None while the page is still loading
            return json.loads(value) if value else {"width": 0, "updates": 0, "summary": ""}

        first = wait_for(lambda: (s := state())["width"] > 0 and s["updates"] >= 2 and s, "a frame and two updates")
        widths = {first["width"]}
        # MJPEG frames keep arriving: the <img> shows both photos (512 and 1126 px wide) in turn
        wait_for(lambda: widths.add(state()["width"]) or widths >= {512, 1126}, "frames of both photos")
        # (width > 0: while the next MJPEG part replaces the picture on a loaded machine, naturalWidth can read 0)
        later = wait_for(lambda: (s := state())["updates"] >= first["updates"] + 3 and s["summary"] != first["summary"]
                         and s["width"] > 0 and s, "the statistics to change")
        assert later["updates"] > first["updates"]
        assert output.hub.encoded >= 2
        # what the page shows is what the pipeline produced for one of the frames fed
        status = later["status"]
        assert f"frame {status['frame']} |" in later["summary"]
        assert f"{status['faces']} face(s)" in later["summary"]
        fed = [[{"track": f.track, "emotion": f.emotion, "confidence": round(f.emotion_confidence, 4),
                 "gender": f.gender, "gender_confidence": round(f.gender_confidence, 4), "box": list(f.box)}
                for f in r.faces] for _, r in frames if r.index == status["frame"]]
        assert status["tracks"] in fed
        assert status["faces"] == len(status["tracks"])
        # the table lists the faces of the frame in the picture: each emotion cell is the number its label shows
        frame = later["frame"]
        assert f"faces of frame {frame['frame']}, the frame in the picture" in later["note"]
        assert frame["width"] == later["width"]  # the picture on the page is that frame
        shown = next(r for _, r in frames if (r.index, r.width) == (frame["frame"], frame["width"]))
        assert len(later["rows"]) == len(shown.faces) == len(frame["tracks"])
        for face, track, row, cells in zip(shown.faces, frame["tracks"], later["rows"], later["cells"]):
            assert row.startswith(f"#{track['track']}{track['emotion']} {track['confidence']:.2f}")
            assert label_text(face) == f"{cells[0]} {cells[1]} / {face.gender}"  # the label drawn on the picture
        # the page around the stream: heading, legend, what runs, no debug counter, the stream across the page
        assert later["heading"] == "face-emotion live view"
        assert "box and label colour = gender: woman man gender not known yet" in " ".join(later["legend"].split())
        assert later["running"] == ("source: images samples (7 file(s)) | emotion model: emotion_mini_xception_int8"
                                    ".tflite | gender model: gender_mini_xception_int8.tflite | detector: not reported")
        assert "status updates" not in later["page"]
        assert later["imgWidth"] == later["pageWidth"]
    finally:
        page.close()
        stop.set()
        feeder.join()


def raw_get(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """One request with exactly these headers (http.client adds none we did not ask for)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for key, value in headers.items():
            connection.putheader(key, value)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


@pytest.mark.parametrize("host, status", [
    ("127.0.0.1:8080", 200), ("[::1]:8080", 200), ("192.168.1.50:8080", 200), ("localhost:8080", 200),
    ("pi.lan:8080", 200), ("PI.LAN.", 200),  # configured in hostnames, any case, trailing dot
    ("attacker.example:8080", 421), ("127.0.0.1.attacker.example", 421), ("pi.lan.evil", 421),
])
def test_a_host_header_from_dns_rebinding_is_refused(live, host, status):
    output = live(hostnames=["pi.lan"])
    for path in ("/", "/status.json"):
        assert raw_get(output.port, path, {"Host": host})[0] == status, (host, path)


def test_a_token_is_needed_as_query_cookie_or_basic_auth(live):
    import base64

    token = "0123456789abcdef0123"
    output = live(token=token)
    host = {"Host": f"127.0.0.1:{output.port}"}
    status, headers = raw_get(output.port, "/status.json", host)
    assert status == 401 and headers["www-authenticate"].startswith("Basic")
    assert raw_get(output.port, "/status.json?token=wrong", host)[0] == 401
    status, headers = raw_get(output.port, f"/?token={token}", host)
    assert status == 200 and headers["set-cookie"].startswith(f"face_emotion_token={token};")
    assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
    cookie = dict(host, Cookie=f"other=1; face_emotion_token={token}")
    assert raw_get(output.port, "/status.json", cookie)[0] == 200  # what the page's fetch() and <img> send
    basic = base64.b64encode(f"viewer:{token}".encode()).decode()
    assert raw_get(output.port, "/status.json", dict(host, Authorization=f"Basic {basic}"))[0] == 200
    wrong = base64.b64encode(b"viewer:nope").decode()
    assert raw_get(output.port, "/status.json", dict(host, Authorization=f"Basic {wrong}"))[0] == 401


@pytest.mark.parametrize("settings, message", [
    ({"token": "short"}, "token: use at least 16"),
    ({"hostnames": ["evil.example/x"]}, "hostnames: 'evil.example/x' is not a host name"),
])
def test_bad_live_view_security_settings_are_named(settings, message):
    from edge.settings import ConfigError, from_mapping

    with pytest.raises(ConfigError, match=message):
        from_mapping(LiveViewSettings, settings, "outputs.live_view")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed ``sock`` (anything it sent first, such as a 503, is read and dropped)."""
    sock.setblocking(False)
    try:
        while sock.recv(4096):
            pass
        return True  # EOF
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset


def test_a_connection_flood_with_the_token_set_stays_bounded_and_late_headers_are_cut(live, frames, monkeypatch):
    """300 connections that never finish their headers: threads and descriptors stay within the caps, a
    request over the cap is refused at once, the late ones are cut at the header deadline, and then the
    live view answers again. Before: one thread and one descriptor per connection for 30 s per trickled byte."""
    from edge.outputs import liveview
    from edge.outputs.liveview import server

    monkeypatch.setattr(server, "HEADER_TIMEOUT_S", 1.5)  # where the server reads it
    cap = 32  # connections served at once (liveview.MAX_CONNECTIONS)
    token = "0123456789abcdef0123"
    output = live(token=token)
    image, result = frames[0]
    flood = 300
    threads_before, fds_before = threading.active_count(), _fds()
    clients: list[socket.socket] = []
    try:
        for _ in range(flood):
            client = socket.create_connection(("127.0.0.1", output.port), timeout=10)
            client.sendall(b"GET /status.json HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the headers never end
            clients.append(client)
            output.update(image, result)  # the frame loop goes on through the flood
        refused = wait_for(lambda: sum(_closed_by_server(c) for c in clients) >= flood - cap
                           or None, "the connections over the cap to be refused at accept", timeout=10)
        assert refused
        server_threads = threading.active_count() - threads_before
        server_fds = _fds() - fds_before - flood  # what the server holds, besides the clients' own sockets
        print(f"flood of {flood}: {server_threads} server threads, {server_fds} server descriptors")
        assert server_threads <= cap and server_fds <= cap + 2
        assert raw_get(output.port, f"/status.json?token={token}", {"Host": "127.0.0.1"})[0] == 503
        # past the header deadline every flood connection has been cut, and the view answers again
        wait_for(lambda: all(_closed_by_server(c) for c in clients), "the late connections to be cut", timeout=10)
        assert raw_get(output.port, f"/status.json?token={token}", {"Host": "127.0.0.1"})[0] == 200
    finally:
        for client in clients:
            client.close()
    wait_for(lambda: output.server.open == 0, "every connection to be released")
    assert cap == liveview.MAX_CONNECTIONS


def test_a_negative_frame_number_is_a_bad_request(live, frames):
    output = live()
    for after in ("-1", "-5", "x"):
        status, _, body = get(output, f"/frame.jpg?after={after}")
        assert status == 400 and body == b"after: not a whole number >= 0\n"


def test_a_failing_request_logs_one_throttled_line_not_a_traceback_each(live, capfd, caplog):
    output = live()
    caplog.set_level("WARNING", logger="edge.outputs.liveview")
    for _ in range(200):
        try:
            raise AssertionError("handler failed")
        except AssertionError:
            output.server.handle_error(None, ("127.0.0.1", 5000))
    assert "Traceback" not in capfd.readouterr().err
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["live view: a request from 127.0.0.1 failed: AssertionError: handler failed"]
