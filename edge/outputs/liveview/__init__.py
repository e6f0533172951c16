"""A headless live view: annotated MJPEG stream, JSON statistics and one HTML page over HTTP.

For a Pi without a screen: open ``http://<pi>:8080/`` (after an ssh tunnel,
since it binds 127.0.0.1 by default) and watch the annotated camera with
fps, per-stage latency and the labels of every track, updating live.

* ``/`` the page: a heading, the annotated picture across the page, a legend
  of the overlay's colours, what is running (source, model files, detector;
  from :meth:`LiveViewOutput.describe`), a table of the faces in the picture
  and statistics refreshed from ``/status.json`` every 500 ms.
* ``/frame.jpg?after=SEQ`` the next annotated frame newer than ``SEQ`` (waits
  for it; 204 after ``FRAME_WAIT_S``), with ``X-Frame-Seq`` and, in
  ``X-Frame-Faces``, the JSON of the faces drawn on it. The page fetches
  frames this way, so its table always lists the faces of the picture it shows.
* ``/stream.mjpg`` ``multipart/x-mixed-replace`` JPEGs of annotated frames, at
  most ``max_fps`` a second, for players and other pages.
* ``/status.json`` fps, median latency per stage over the last
  ``stats_window`` frames, faces with track/labels/box, frame index, uptime,
  what is running.

The page's table and the picture's labels show the same number for a face:
both come from the one frame the JPEG was drawn from, and both are the smoothed
probability of the shown class (``FaceResult.emotion_scores`` after the
tracker). The table used to list the newest frame from ``/status.json``
beside an MJPEG picture sent at most ``max_fps`` times a second, so the two
disagreed (0.18 against 0.30 for one face).

The frame loop never waits for the network: :meth:`LiveViewOutput.update`
records statistics and, only while someone watches and at most ``max_fps``
times a second, hands a copy of the frame to the server threads; drawing and
JPEG encoding happen there, once per frame however many viewers there are.
A viewer that does not read only blocks its own thread, and newer frames
simply replace older ones.

Who may read it (the ``Host`` check against DNS rebinding, the optional
``token``) is :mod:`~edge.outputs.liveview.auth`; the cap on connections and the
header deadline that keep a flood from reaching the frame loop are
:mod:`~edge.outputs.liveview.server`. The other modules, one job each:
:mod:`~edge.outputs.liveview.settings` (``LiveViewSettings``),
:mod:`~edge.outputs.liveview.page` (``page.html``, shipped as package data),
:mod:`~edge.outputs.liveview.hub` (frames and statistics handed to the server
threads), :mod:`~edge.outputs.liveview.handler` (the routes) and
:mod:`~edge.outputs.liveview.output` (``LiveViewOutput``).
"""

from edge.outputs.liveview.auth import COOKIE, host_allowed, host_names, token_given
from edge.outputs.liveview.handler import BOUNDARY, FRAME_WAIT_S, Handler
from edge.outputs.liveview.hub import Hub, tracks
from edge.outputs.liveview.output import LiveViewOutput
from edge.outputs.liveview.page import legend_html, page
from edge.outputs.liveview.server import HEADER_TIMEOUT_S, MAX_CONNECTIONS, MAX_PER_ADDRESS, LiveViewServer
from edge.outputs.liveview.settings import LiveViewSettings

__all__ = ["BOUNDARY", "COOKIE", "FRAME_WAIT_S", "HEADER_TIMEOUT_S", "MAX_CONNECTIONS", "MAX_PER_ADDRESS", "Handler",
           "Hub", "LiveViewOutput", "LiveViewServer", "LiveViewSettings", "host_allowed", "host_names", "legend_html",
           "page", "token_given", "tracks"]
