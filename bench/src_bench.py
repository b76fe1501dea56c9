#!/usr/bin/env python3
"""End-to-end client benchmark for mjpegsrc.

One invocation builds the release plugin and examples, starts
bench/bench_server.rs (the same 720p q85 MJPEG stream at the maximum rate),
and runs, one after the other against that server, with the same number of
frames each:

  curl -s -o /dev/null URL
  reqwest_reader URL --no-copy        (hyper's body as it comes, no copy)
  reqwest_reader URL                  (plus one copy of every byte)
  gst-launch-1.0 souphttpsrc location=URL ! multipartdemux ! fakesink
  gst-launch-1.0 souphttpsrc location=URL ! multipartdemux ! jpegparse ! fakesink
  gst-launch-1.0 mjpegsrc location=URL retries=0 num-buffers=N ! fakesink

The server serves exactly N frames then closes (`/stream?frames=N`), so every
client reads the same bytes. CPU (user+sys) and peak RSS come from the
child's rusage (wait4, the numbers /usr/bin/time prints, at microsecond
resolution). Each client also runs once with a few frames (N0) in the same
round; "CPU ms/frame" is the marginal cost (cpu(N) - cpu(N0)) / (N - N0), so
process start-up (gst-launch loading the registry, ...) does not count, and
"fps" is likewise (N - N0) / (wall(N) - wall(N0)). The median over the
repeats is printed as a markdown table.

mjpegsrc never waits on downstream: a frame that finds no free buffer or a
full hand-over queue is dropped and counted. If it drops any, it cannot reach
num-buffers=N before the server closes, and it ends with an error instead of
EOS; the row then says so. A last run reads mjpegsrc's `stats` through
PyGObject (if /usr/bin/python3 has it) to show received/pushed/dropped.

With --baseline DIR (a directory holding another build's libgstmjpeg.so,
e.g. target/release of an older commit's worktree), the same mjpegsrc
pipeline also runs against that plugin in every round, interleaved with the
current one, and the table gains its row and a current/baseline ratio: a
before/after comparison measured in one invocation on one server.

Usage: python3 bench/src_bench.py [--frames N] [--repeat R] [--chunked]
                                  [--baseline DIR] [--no-build] [--no-install]
"""

import argparse
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
EXAMPLES = os.path.join(RELEASE, "examples")
RUN_TIMEOUT = 300
# mjpegsrc defaults (max-frame-size, pool-size): the memory it may hold.
MAX_FRAME_SIZE = 4 * 1024 * 1024
POOL_SIZE = 8
PAGE = 4096
MEDIAN_KEYS = ("ms_per_frame", "ms_per_frame_total", "fps", "rss", "csw")

GI_STATS = r"""
import sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
p = Gst.parse_launch(sys.argv[1])
p.set_state(Gst.State.PLAYING)
msg = p.get_bus().timed_pop_filtered(
    300 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
end = "timeout" if msg is None else (
    "eos" if msg.type == Gst.MessageType.EOS else "error: %s" % msg.parse_error()[0].message)
s = p.get_by_name("src").get_property("stats")
p.set_state(Gst.State.NULL)
fields = ["frames-received", "frames-pushed", "frames-dropped", "dropped-no-buffer",
          "dropped-queue-full", "dropped-too-big", "overruns", "reconnects", "bytes-received"]
print("end=%s %s" % (end, " ".join("%s=%s" % (f, s.get_value(f)) for f in fields)))
"""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def ensure_tools(install):
    """apt-get what a fresh Debian 12 machine lacks."""
    needed = {
        "curl": shutil.which("curl") is not None,
        "time": os.path.exists("/usr/bin/time"),
        "gstreamer1.0-tools": shutil.which("gst-launch-1.0") is not None,
    }
    for element, package in [
        ("souphttpsrc", "gstreamer1.0-plugins-good"),
        ("jpegenc", "gstreamer1.0-plugins-good"),
        ("videotestsrc", "gstreamer1.0-plugins-base"),
        ("jpegparse", "gstreamer1.0-plugins-bad"),
    ]:
        ok = (
            needed["gstreamer1.0-tools"]
            and subprocess.run(
                ["gst-inspect-1.0", "--exists", element], capture_output=True
            ).returncode
            == 0
        )
        needed[package] = needed.get(package, True) and ok
    missing = sorted(p for p, ok in needed.items() if not ok)
    if not missing:
        return
    if not install:
        sys.exit("missing: %s (run without --no-install)" % " ".join(missing))
    log("installing %s" % " ".join(missing))
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "apt-get"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(apt + ["update", "-qq"], check=True, env=env)
    subprocess.run(apt + ["install", "-y", "-qq"] + missing, check=True, env=env)


class Server:
    """bench/bench_server.rs (example bench_server) in the background; its per-connection lines."""

    def __init__(self, chunked):
        argv = [os.path.join(EXAMPLES, "bench_server")]
        if chunked:
            argv.append("--chunked")
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines = queue.Queue()
        self.info = ""
        port = self.proc.stdout.readline().strip()
        if not port.isdigit():
            self.stop()
            sys.exit("bench_server did not print its port: %r" % port)
        self.port = int(port)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stderr:
            line = line.strip()
            if line.startswith("frames="):
                self.info = line
            self.lines.put(line)

    def served(self, tag, timeout=5.0):
        """The server's line for the connection whose path has `tag`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return {}
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return {}
            if line.startswith("served ") and ("run=%s " % tag) in line + " ":
                return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_measured(argv, env=None):
    """Run argv; wall seconds, CPU seconds (user+sys), peak RSS KiB, rc, stdout.

    It runs under /usr/bin/time, whose %M is the peak RSS: a child forked
    straight from this Python process would inherit Python's RSS high-water
    mark across exec. CPU comes from wait4 on /usr/bin/time (its own share
    is negligible), at microsecond rather than its 10 ms resolution.
    """
    fd, rss_file = tempfile.mkstemp(prefix="src_bench_time_")
    os.close(fd)
    argv = ["/usr/bin/time", "-f", "%M", "-o", rss_file] + argv
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    timer = threading.Timer(RUN_TIMEOUT, lambda: os.killpg(proc.pid, signal.SIGKILL))
    timer.start()
    # Drain the pipes on threads so the child never blocks on them; reap it
    # with wait4 to get its rusage (all its threads, waited-for children).
    out, err = [], []
    pumps = [
        threading.Thread(target=lambda: out.append(proc.stdout.read())),
        threading.Thread(target=lambda: err.append(proc.stderr.read())),
    ]
    for t in pumps:
        t.start()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    timer.cancel()
    for t in pumps:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(rss_file) as f:
        # Last line: "Command exited with non-zero status N" may precede it.
        lines = f.read().split()
    os.unlink(rss_file)
    rss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    return {
        "wall": wall,
        "cpu": ru.ru_utime + ru.ru_stime,
        "csw": ru.ru_nvcsw + ru.ru_nivcsw,
        "rss": rss,
        "rc": proc.returncode,
        "out": out[0].decode(errors="replace"),
        "err": err[0].decode(errors="replace"),
    }


def mjpegsrc_argv(u, n):
    return [
        "gst-launch-1.0",
        "-q",
        "mjpegsrc",
        "location=%s" % u,
        "retries=0",
        "num-buffers=%d" % n,
        "!",
        "fakesink",
    ]


def clients(base, plugin_env, baseline_env):
    """(name, argv(url, n), env, how the frame count is checked)."""
    reader = os.path.join(EXAMPLES, "reqwest_reader")
    soup = "souphttpsrc location=%s ! multipartdemux ! "
    extra = []
    if baseline_env is not None:
        extra = [("mjpegsrc (baseline)", mjpegsrc_argv, baseline_env, "eos")]
    return extra + [
        ("curl -o /dev/null", lambda u, n: ["curl", "-s", "-o", "/dev/null", u], None, "server"),
        ("reqwest (no copy)", lambda u, n: [reader, u, "--no-copy"], None, "reader"),
        ("reqwest + 1 copy", lambda u, n: [reader, u], None, "reader"),
        (
            "souphttpsrc ! multipartdemux",
            lambda u, n: ["gst-launch-1.0", "-q"] + (soup % u + "fakesink").split(),
            None,
            "eos",
        ),
        (
            "souphttpsrc ! multipartdemux ! jpegparse",
            lambda u, n: ["gst-launch-1.0", "-q"] + (soup % u + "jpegparse ! fakesink").split(),
            None,
            "eos",
        ),
        ("mjpegsrc", mjpegsrc_argv, plugin_env, "eos"),
    ]


def frames_of(kind, res, served, n):
    """Frames the client delivered, or a reason it did not deliver n."""
    if kind == "reader":
        m = re.search(r"frames=(\d+)", res["out"])
        return int(m.group(1)) if m else 0
    if kind == "server":
        return n if res["rc"] == 0 and served.get("complete") == "1" else 0
    return n if res["rc"] == 0 else None


def fmt_ratio(x, ref):
    return "%.2fx" % (x / ref) if ref else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=30000, help="frames per run (N)")
    ap.add_argument(
        "--base-frames", type=int, default=100, help="frames of the start-up run (N0)"
    )
    ap.add_argument("--repeat", type=int, default=5, help="rounds; the median is shown")
    ap.add_argument("--chunked", action="store_true", help="chunked HTTP/1.1 bodies")
    ap.add_argument(
        "--baseline",
        metavar="DIR",
        help="directory with another build's libgstmjpeg.so to compare mjpegsrc against",
    )
    ap.add_argument("--no-build", action="store_true", help="skip cargo build")
    ap.add_argument("--no-install", action="store_true", help="never apt-get")
    args = ap.parse_args()
    n, n0 = args.frames, args.base_frames
    if not 0 < n0 < n:
        sys.exit("need 0 < --base-frames < --frames")

    ensure_tools(not args.no_install)
    if not args.no_build:
        log("cargo build --release --examples --lib")
        subprocess.run(
            ["cargo", "build", "--release", "--examples", "--lib"], cwd=ROOT, check=True
        )
    # One registry file per plugin build, so neither run rescans the other's.
    regdir = tempfile.mkdtemp(prefix="src-bench-registry-")
    plugin_env = dict(
        os.environ, GST_PLUGIN_PATH=RELEASE, GST_REGISTRY=os.path.join(regdir, "current.bin")
    )
    baseline_env = None
    if args.baseline:
        so = os.path.join(args.baseline, "libgstmjpeg.so")
        if not os.path.exists(so):
            sys.exit("--baseline: %s does not exist" % so)
        baseline_env = dict(
            os.environ,
            GST_PLUGIN_PATH=os.path.abspath(args.baseline),
            GST_REGISTRY=os.path.join(regdir, "baseline.bin"),
        )

    server = Server(args.chunked)
    base = "http://127.0.0.1:%d/stream" % server.port
    log("server on port %d" % server.port)
    results = {}
    run_id = 0
    try:
        for rnd in range(args.repeat):
            for name, argv, env, kind in clients(base, plugin_env, baseline_env):
                pair = {}
                for frames in (n0, n):
                    run_id += 1
                    url = "%s?frames=%d&run=%d" % (base, frames, run_id)
                    res = run_measured(argv(url, frames), env)
                    served = server.served(run_id)
                    res["frames"] = frames_of(kind, res, served, frames)
                    res["served"] = int(served.get("frames", 0))
                    pair[frames] = res
                    if res["frames"] is None and name.startswith("mjpegsrc"):
                        log("  %s: ended before num-buffers=%d (dropped frames)" % (name, frames))
                    elif res["frames"] != frames:
                        log(
                            "  %s: %s of %s frames (rc %d) %s"
                            % (name, res["frames"], frames, res["rc"], res["err"].strip()[-300:])
                        )
                big, small = pair[n], pair[n0]
                dcpu = big["cpu"] - small["cpu"]
                dwall = big["wall"] - small["wall"]
                results.setdefault(name, []).append(
                    {
                        "ms_per_frame": 1000.0 * dcpu / (n - n0),
                        "ms_per_frame_total": 1000.0 * big["cpu"] / n,
                        "fps": (n - n0) / dwall if dwall > 0 else float("inf"),
                        "rss": big["rss"],
                        "csw": (big["csw"] - small["csw"]) / (n - n0),
                        "frames": big["frames"],
                        "served": big["served"],
                    }
                )
                log(
                    "round %d %-42s cpu %.3f s / %d frames, %.3f s / %d, wall %.2f s, rss %d KiB"
                    % (rnd + 1, name, big["cpu"], n, small["cpu"], n0, big["wall"], big["rss"])
                )
        stats_line = None
        if os.path.exists("/usr/bin/python3"):
            run_id += 1
            url = "%s?frames=%d&run=%d" % (base, n, run_id)
            desc = "mjpegsrc name=src location=%s retries=0 num-buffers=%d ! fakesink" % (url, n)
            res = run_measured(["/usr/bin/python3", "-c", GI_STATS, desc], plugin_env)
            server.served(run_id)
            m = re.search(r"end=.*", res["out"])
            stats_line = m.group(0) if m else (res["err"].strip()[-300:] or None)
    finally:
        server.stop()
        shutil.rmtree(regdir, ignore_errors=True)

    med = {
        name: {k: statistics.median(r[k] for r in rows) for k in MEDIAN_KEYS}
        for name, rows in results.items()
    }
    curl = med["curl -o /dev/null"]["ms_per_frame"]
    soup = med["souphttpsrc ! multipartdemux"]
    print()
    print(
        "%s body, %s; N = %d frames (N0 = %d), median of %d rounds"
        % ("chunked HTTP/1.1" if args.chunked else "close-delimited HTTP/1.0", server.info, n, n0, args.repeat)
    )
    print()
    print(
        "| client | frames | fps | CPU ms/frame | vs curl | vs soup ! demux "
        "| CPU ms/frame incl. start-up | context switches/frame | peak RSS KiB | RSS vs soup ! demux |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, m in med.items():
        frames = [r["frames"] for r in results[name]]
        if all(f == n for f in frames):
            shown = "%d" % n
        elif name.startswith("mjpegsrc") and all(f is None for f in frames):
            shown = "%d read, some dropped *" % n
        else:
            shown = "/".join("?" if f is None else str(f) for f in frames)
        print(
            "| %s | %s | %.0f | %.4f | %s | %s | %.4f | %.2f | %d | %+d |"
            % (
                name,
                shown,
                m["fps"],
                m["ms_per_frame"],
                fmt_ratio(m["ms_per_frame"], curl),
                fmt_ratio(m["ms_per_frame"], soup["ms_per_frame"]),
                m["ms_per_frame_total"],
                m["csw"],
                m["rss"],
                m["rss"] - soup["rss"],
            )
        )
    mean_part = 0
    mm = re.search(r"mean-jpeg-bytes=(\d+)", server.info)
    if mm:
        mean_part = int(mm.group(1))
    touched = POOL_SIZE * ((mean_part + PAGE - 1) // PAGE) * PAGE // 1024
    full = MAX_FRAME_SIZE * POOL_SIZE // 1024
    src = med["mjpegsrc"]
    jp = med["souphttpsrc ! multipartdemux ! jpegparse"]
    print()
    print(
        "pool: max-frame-size x pool-size = %d KiB reserved, pages touched only as used: "
        "~%d KiB for %d frames of %d bytes in flight. RSS target: mjpegsrc <= souphttpsrc's + pool "
        "= %d KiB (upper bound) / ~%d KiB (touched); measured %d KiB: %s."
        % (
            full,
            touched,
            POOL_SIZE,
            mean_part,
            soup["rss"] + full,
            soup["rss"] + touched,
            src["rss"],
            "met" if src["rss"] <= soup["rss"] + full else "NOT met",
        )
    )
    print(
        "CPU targets: mjpegsrc <= souphttpsrc ! multipartdemux (%.2fx: %s) and "
        "<= 0.25x the jpegparse pipeline (%.2fx: %s)."
        % (
            src["ms_per_frame"] / soup["ms_per_frame"],
            "met" if src["ms_per_frame"] <= soup["ms_per_frame"] else "NOT met",
            src["ms_per_frame"] / jp["ms_per_frame"],
            "met" if src["ms_per_frame"] <= 0.25 * jp["ms_per_frame"] else "NOT met",
        )
    )
    if baseline_env is not None:
        old = med["mjpegsrc (baseline)"]
        print(
            "Against the baseline build (%s), same server, same rounds: CPU ms/frame %.4f vs %.4f "
            "(%s), fps %.0f vs %.0f (%s), peak RSS %d vs %d KiB."
            % (
                args.baseline,
                src["ms_per_frame"],
                old["ms_per_frame"],
                fmt_ratio(src["ms_per_frame"], old["ms_per_frame"]),
                src["fps"],
                old["fps"],
                fmt_ratio(src["fps"], old["fps"]),
                src["rss"],
                old["rss"],
            )
        )
    if stats_line:
        got = dict(re.findall(r"(frames-received|frames-pushed)=(\d+)", stats_line))
        per_pushed = ""
        if int(got.get("frames-pushed", 0)) > 0:
            ms = src["ms_per_frame"] * int(got["frames-received"]) / int(got["frames-pushed"])
            per_pushed = " Per frame pushed that is %.4f ms (%.2fx souphttpsrc ! multipartdemux)." % (
                ms,
                ms / soup["ms_per_frame"],
            )
        print(
            "* mjpegsrc never waits on downstream; at this rate it may drop frames and then "
            "ends on the server's close instead of num-buffers. Its CPU per frame is per "
            "frame read. stats after one more run of %d frames: %s.%s" % (n, stats_line, per_pushed)
        )


if __name__ == "__main__":
    main()
