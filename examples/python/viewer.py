#!/usr/bin/env python3
"""An MJPEG viewer in Python (PyGObject) using the mjpeg GStreamer plugin.

Prints py-mjpeg-style statistics once a second, read from mjpegsrc's
``stats`` property, and reports the source's bus messages.

Debian: ``apt-get install python3-gi gir1.2-gstreamer-1.0``; the plugin is
found like any other (installed, or ``GST_PLUGIN_PATH`` pointing at the
directory holding ``libgstmjpeg.so``)::

    GST_PLUGIN_PATH=target/release python3 examples/python/viewer.py \\
        http://127.0.0.1:8080/stream --seconds 5
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--seconds", type=int, default=0, help="stop after N seconds (0 = never)")
    ap.add_argument("--display", action="store_true", help="decode and show the frames")
    args = ap.parse_args()

    Gst.init(None)
    src = Gst.ElementFactory.make("mjpegsrc", "src")
    if src is None:
        sys.exit("no mjpegsrc element: set GST_PLUGIN_PATH to the directory of libgstmjpeg.so")
    src.set_property("location", args.url)
    tail = "jpegdec ! videoconvert ! autovideosink" if args.display else "fakesink"
    pipeline = Gst.Pipeline.new("viewer")
    pipeline.add(src)
    sink_bin = Gst.parse_bin_from_description(tail, True)
    pipeline.add(sink_bin)
    src.link(sink_bin)

    loop = GLib.MainLoop()
    status = {"code": 0, "seconds": 0}

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            if s.get_name() == "mjpegsrc-connected":
                print("connected: HTTP %d %s (boundary %r)" % (
                    s.get_uint("status")[1], s.get_string("content-type"),
                    s.get_string("boundary")), flush=True)
            elif s.get_name() == "mjpegsrc-reconnect":
                print("reconnecting in %d ms (attempt %d): %s" % (
                    s.get_uint64("delay-ms")[1], s.get_uint("attempt")[1],
                    s.get_string("reason")), flush=True)
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            print("error: %s (%s)" % (err.message, debug), file=sys.stderr, flush=True)
            status["code"] = 1
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            print("end of stream", flush=True)
            loop.quit()

    def report():
        st = src.get_property("stats")
        print("URL: %s | fps: %.1f | buffer overruns: %d | reconnects: %d | "
              "total frames: %d | discarded frames: %d | free buffers: %d" % (
                  args.url, st.get_double("fps")[1], st.get_uint64("overruns")[1],
                  st.get_uint64("reconnects")[1], st.get_uint64("frames-received")[1],
                  st.get_uint64("frames-dropped")[1], st.get_uint("free-buffers")[1]),
              flush=True)
        status["seconds"] += 1
        if args.seconds and status["seconds"] >= args.seconds:
            loop.quit()
            return False
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    GLib.timeout_add_seconds(1, report)
    pipeline.set_state(Gst.State.PLAYING)
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    pipeline.set_state(Gst.State.NULL)
    sys.exit(status["code"])


if __name__ == "__main__":
    main()
