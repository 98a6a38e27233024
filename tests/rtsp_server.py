"""A real RTSP camera for stall tests: GStreamer's RTSP server (Debian gir1.2-gst-rtsp-server-1.0,
python3-gi), run by the system Python: `python3 tests/rtsp_server.py PORT` serves rtsp://127.0.0.1:PORT/cam
(MJPEG over RTP, 320x240 at 15 fps) and prints "ready". Stopping it with SIGSTOP is a silent stall:
the socket stays open and nothing more arrives."""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_service(sys.argv[1])
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=15/1,format=I420 "
    "! jpegenc ! rtpjpegpay name=pay0 pt=26 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
