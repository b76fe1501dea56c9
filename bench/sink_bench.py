#!/usr/bin/env python3
"""Benchmark mjpegsink against `multipartmux ! tcpserversink`.

One invocation serves live `videotestsrc pattern=smpte horizontal-speed=4 !
jpegenc quality=85` at 30 fps (1280x720, and 640x480 for the largest K) to K
clients from each server and reports, per run: per-client delivered fps
(min / median over clients), server CPU % (of one core, averaged over the
measurement window; includes encoding -- see the K=0 baseline rows), RSS, and
how far behind live frames arrive. A final run per server adds one viewer
rate-limited to 100 kB/s next to 10 normal ones and reports how far behind
live that slow viewer is, and whether the others kept 30 fps.

Clients: one process (bench/multiclient.rs, tokio) holding all
connections, so 1000 viewers do not need 1000 processes. It runs on the same
machine and competes with the server for the CPUs.

"Behind live" is arrival time minus the frame's X-Timestamp (mjpegsink stamps
the wall clock when the frame was rendered). tcpserversink sends no
timestamps: there it is estimated from the frame count (exact only because it
never drops frames).

Usage:
    bench/sink_bench.py [--ks 1,10,100,1000] [--vga-k 1000] [--duration 10]
                        [--warmup 4] [--servers mjpegsink,tcpserversink]
                        [--no-slow] [--slow-servers mjpegsink,mjpegsink-unsent-limit-0,tcpserversink]
                        [--no-build] [--client-threads 1] [--tls] [--h2] [--h2-window B]
                        [--mounts 1x100,2x50] [--mounts-size 1280x720]
`--mounts` compares mounts on one port: each MxK runs one encoder, a `tee`
into M mjpegsinks sharing one port (mount=/m0 ... /m<M-1>), and K clients
per mount (one client process per mount); `--mounts 1x100,2x50` is 1 mount
x 100 clients against 2 mounts x 50, in the same run. Only these runs are
made when `--mounts` is given.
`--tls` adds the server mjpegsink-tls (HTTPS with a fresh self-signed
certificate, read by the clients over TLS) to every run, so the cost of TLS
is measured in the same run as plain mjpegsink. `--h2` adds mjpegsink-h2:
the same HTTPS sink read over HTTP/2 (one h2 connection per client, ALPN
`h2`); it may also be named in `--slow-servers`. `--h2-window 6291456`
gives its fast readers Chromium's receive window instead of h2's 64 KiB
(fewer WINDOW_UPDATE frames for the server to read).
Prints progress on stderr and a Markdown table on stdout.
"""

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
CLIENT = os.path.join(RELEASE, "examples", "multiclient")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def source(width, height):
    return (
        "videotestsrc is-live=true pattern=smpte horizontal-speed=4 ! "
        f"video/x-raw,width={width},height={height},framerate=30/1 ! "
        "jpegenc quality=85"
    )


TLS_DIR = None


def tls_files():
    """A self-signed certificate for 127.0.0.1 (made once per run)."""
    global TLS_DIR
    if TLS_DIR is None:
        TLS_DIR = tempfile.mkdtemp(prefix="sink-bench-tls-")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-addext", "basicConstraints=critical,CA:FALSE",
             "-keyout", os.path.join(TLS_DIR, "key.pem"),
             "-out", os.path.join(TLS_DIR, "cert.pem")],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    return os.path.join(TLS_DIR, "cert.pem"), os.path.join(TLS_DIR, "key.pem")


def client_cmd(url, k, args):
    """bench/multiclient.rs holding `k` viewers of `url` for one run."""
    return [
        CLIENT,
        "--url", url,
        "--clients", str(k),
        "--warmup", str(args.warmup),
        "--duration", str(args.duration),
        "--threads", str(args.client_threads),
        "--ramp", str(min(args.warmup / 2, 2.0)),
    ]


def sink(server, port):
    if server in ("mjpegsink-tls", "mjpegsink-h2"):
        cert, key = tls_files()
        return f"mjpegsink host=127.0.0.1 port={port} tls-cert={cert} tls-key={key}"
    if server == "mjpegsink":
        return f"mjpegsink host=127.0.0.1 port={port}"
    if server == "mjpegsink-unsent-limit-0":
        # The kernel's default (auto-tuned, up to 4 MiB) send buffering.
        return f"mjpegsink host=127.0.0.1 port={port} unsent-limit=0"
    if server == "tcpserversink":
        return f"multipartmux ! tcpserversink host=127.0.0.1 port={port}"
    if server == "fakesink":
        return "fakesink sync=true"
    raise ValueError(server)


def run(server, width, height, k, slow, args):
    port = free_port()
    pipeline = f"{source(width, height)} ! {sink(server, port)}"
    env = dict(os.environ, GST_PLUGIN_PATH=RELEASE)
    proc = subprocess.Popen(
        ["gst-launch-1.0", "-q"] + pipeline.split(),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        if server == "fakesink":
            time.sleep(args.warmup)
            t0, c0 = time.monotonic(), cpu_ticks(proc.pid)
            time.sleep(args.duration)
            t1, c1 = time.monotonic(), cpu_ticks(proc.pid)
            return {"cpu": 100.0 * (c1 - c0) / CLK_TCK / (t1 - t0), "rss": rss_mib(proc.pid)}
        if not wait_port(port):
            raise RuntimeError(f"{server} did not listen: {proc.stderr.read1().decode()}")
        tls = server in ("mjpegsink-tls", "mjpegsink-h2")
        scheme = "https" if tls else "http"
        cmd = client_cmd(f"{scheme}://127.0.0.1:{port}/stream", k, args)
        if slow:
            cmd += ["--slow", "1", "--slow-rate", str(args.slow_rate)]
        if server == "tcpserversink":
            cmd.append("--raw")
        if tls:
            cmd += ["--cacert", tls_files()[0]]
        if server == "mjpegsink-h2":
            cmd.append("--h2")
            if args.h2_window and not slow:
                cmd += ["--h2-window", str(args.h2_window)]
        client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(args.warmup)
        t0, c0, k0 = time.monotonic(), cpu_ticks(proc.pid), cpu_ticks(client.pid)
        time.sleep(args.duration)
        t1, c1, k1 = time.monotonic(), cpu_ticks(proc.pid), cpu_ticks(client.pid)
        rss = rss_mib(proc.pid)
        out, err = client.communicate(timeout=60)
        if client.returncode != 0:
            raise RuntimeError(f"client failed: {err.decode()}")
        res = json.loads(out)
        res["cpu"] = 100.0 * (c1 - c0) / CLK_TCK / (t1 - t0)
        # The clients share the machine: near 100 % x --client-threads, they
        # and not the server limit the fps.
        res["client_cpu"] = 100.0 * (k1 - k0) / CLK_TCK / (t1 - t0)
        res["rss"] = rss
        return res
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_mounts(m, k, width, height, args):
    """One encoder teed into `m` mjpegsinks sharing one port, `k` clients
    on each mount; the server's CPU and the clients' fps over all mounts."""
    port = free_port()
    branches = "".join(
        f" t. ! queue ! mjpegsink host=127.0.0.1 port={port} mount=/m{i}" for i in range(m)
    )
    pipeline = f"{source(width, height)} ! tee name=t{branches}"
    env = dict(os.environ, GST_PLUGIN_PATH=RELEASE)
    proc = subprocess.Popen(
        ["gst-launch-1.0", "-q"] + pipeline.split(),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    clients = []
    try:
        if not wait_port(port):
            raise RuntimeError(f"mjpegsink did not listen: {proc.stderr.read1().decode()}")
        for i in range(m):
            cmd = client_cmd(f"http://127.0.0.1:{port}/m{i}/stream", k, args)
            clients.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        time.sleep(args.warmup)
        t0, c0 = time.monotonic(), cpu_ticks(proc.pid)
        time.sleep(args.duration)
        t1, c1 = time.monotonic(), cpu_ticks(proc.pid)
        rss = rss_mib(proc.pid)
        fasts = []
        for c in clients:
            out, err = c.communicate(timeout=60)
            if c.returncode != 0:
                raise RuntimeError(f"client failed: {err.decode()}")
            fasts.append(json.loads(out)["fast"])
        if not all(f.get("connected") for f in fasts):
            raise RuntimeError(f"clients not connected: {fasts}")
        p50s = sorted(f["fps_p50"] for f in fasts)
        return {
            "cpu": 100.0 * (c1 - c0) / CLK_TCK / (t1 - t0),
            "rss": rss,
            "fps_min": min(f["fps_min"] for f in fasts),
            "fps_p50": p50s[len(p50s) // 2],
            "lag_p50_s": max(f["lag_p50_s"] for f in fasts),
            "lag_p95_s": max(f["lag_p95_s"] for f in fasts),
        }
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mounts_main(args):
    w, h = (int(x) for x in args.mounts_size.split("x"))
    rows = []
    log(f"baseline {w}x{h}: encoder only")
    base = run("fakesink", w, h, 0, False, args)
    for spec in args.mounts.split(","):
        m, k = (int(x) for x in spec.split("x"))
        log(f"{m} mount(s) x K={k}, {w}x{h}")
        try:
            r = run_mounts(m, k, w, h, args)
        except Exception as e:  # report and go on
            log(f"  failed: {e}")
            r = {"error": str(e)}
        log("  " + json.dumps(r))
        rows.append((m, k, r))
    print(f"\nmeasured {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
          f"{args.warmup:g} s warm-up + {args.duration:g} s window per run, {w}x{h} q85 30 fps, "
          f"one encoder teed into the mounts; encoder alone: {base['cpu']:.1f} % CPU\n")
    print("| mounts x clients per mount | fps per client min / median | server CPU % "
          "| server RSS MiB | behind live p50 / p95 (ms, worst mount) |")
    print("|---|---|---:|---:|---|")
    for (m, k, r) in rows:
        if "error" in r:
            print(f"| {m} x {k} | failed: {r['error'][:60]} | | | |")
            continue
        print(
            f"| {m} x {k} | {r['fps_min']:.1f} / {r['fps_p50']:.1f} | {r['cpu']:.1f} "
            f"| {r['rss']:.1f} | {r['lag_p50_s'] * 1000:.0f} / {r['lag_p95_s'] * 1000:.0f} |"
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", default="1,10,100,1000")
    ap.add_argument("--vga-k", type=int, default=1000, help="K for the 640x480 run (0 = skip)")
    ap.add_argument("--servers", default="mjpegsink,tcpserversink")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=4.0)
    ap.add_argument("--slow-rate", type=int, default=100_000)
    ap.add_argument("--client-threads", type=int, default=1)
    ap.add_argument("--no-slow", action="store_true")
    ap.add_argument("--slow-servers", default="mjpegsink,mjpegsink-unsent-limit-0,tcpserversink")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--tls", action="store_true", help="also run mjpegsink over HTTPS")
    ap.add_argument("--mounts", default="",
                    help="MxK,...: M mounts on one port x K clients each (only these runs)")
    ap.add_argument("--mounts-size", default="1280x720")
    ap.add_argument("--h2", action="store_true", help="also run mjpegsink over HTTP/2 (HTTPS)")
    ap.add_argument("--h2-window", type=int, default=0,
                    help="HTTP/2 readers' stream window in bytes (Chromium: 6291456; "
                         "default h2's 65535); the slow viewer keeps the default")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    if not args.no_build:
        log("building (release) ...")
        subprocess.run(
            ["cargo", "build", "--release", "--lib", "--example", "multiclient"],
            cwd=ROOT, check=True,
        )

    if args.mounts:
        mounts_main(args)
        return

    servers = args.servers.split(",")
    if args.tls and "mjpegsink-tls" not in servers:
        servers.append("mjpegsink-tls")
    if args.h2 and "mjpegsink-h2" not in servers:
        servers.append("mjpegsink-h2")
    ks = [int(k) for k in args.ks.split(",") if k]
    runs = [(1280, 720, k) for k in ks]
    if args.vga_k:
        runs.append((640, 480, args.vga_k))

    rows = []
    for (w, h) in sorted({(w, h) for (w, h, _) in runs}, reverse=True):
        log(f"baseline {w}x{h}: encoder only")
        r = run("fakesink", w, h, 0, False, args)
        rows.append(("encoder only (fakesink)", f"{w}x{h}", 0, r))
    for (w, h, k) in runs:
        for s in servers:
            log(f"{s} {w}x{h} K={k}")
            try:
                r = run(s, w, h, k, False, args)
            except Exception as e:  # report and go on
                log(f"  failed: {e}")
                r = {"error": str(e)}
            log("  " + json.dumps(r))
            rows.append((s, f"{w}x{h}", k, r))

    slow_rows = []
    if not args.no_slow:
        for s in args.slow_servers.split(","):
            log(f"{s} 1280x720 K=10 + 1 slow client at {args.slow_rate} B/s")
            try:
                r = run(s, 1280, 720, 10, True, args)
            except Exception as e:
                log(f"  failed: {e}")
                r = {"error": str(e)}
            log("  " + json.dumps(r))
            slow_rows.append((s, r))

    def f(x, fmt="{:.1f}"):
        return "-" if x is None or (isinstance(x, float) and x != x) else fmt.format(x)

    print(f"\nmeasured {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
          f"{args.warmup:g} s warm-up + {args.duration:g} s window per run\n")
    print("| server | size | K | fps per client min / median | server CPU % | client CPU % "
          "| server RSS MiB | behind live p50 / p95 (ms) |")
    print("|---|---|---:|---|---:|---:|---:|---|")
    for (s, size, k, r) in rows:
        if "error" in r:
            print(f"| {s} | {size} | {k} | failed: {r['error'][:60]} | | | | |")
            continue
        fast = r.get("fast")
        if fast is not None and not fast.get("connected"):
            print(f"| {s} | {size} | {k} | failed: {str(fast.get('first_error'))[:60]} | | | | |")
            continue
        if fast is None:
            print(f"| {s} | {size} | - | - | {f(r['cpu'])} | - | {f(r['rss'])} | - |")
            continue
        print(
            f"| {s} | {size} | {k} | {f(fast['fps_min'])} / {f(fast['fps_p50'])} | {f(r['cpu'])} "
            f"| {f(r.get('client_cpu'))} | {f(r['rss'])} | {f(fast['lag_p50_s'] * 1000, '{:.0f}')} / "
            f"{f(fast['lag_p95_s'] * 1000, '{:.0f}')} |"
        )
    if slow_rows:
        print(f"\nOne viewer limited to {args.slow_rate / 1000:g} kB/s next to 10 normal "
              "viewers, 1280x720 q85 30 fps:\n")
        print("| server | slow viewer fps | slow viewer behind live p50 / max (s) "
              "| other viewers fps min | server RSS MiB |")
        print("|---|---:|---|---:|---:|")
        for (s, r) in slow_rows:
            if "error" in r:
                print(f"| {s} | failed: {r['error'][:60]} | | | |")
                continue
            sl, fast = r["slow"], r["fast"]
            print(
                f"| {s} | {f(sl['fps_p50'])} | {f(sl['lag_p50_s'], '{:.2f}')} / "
                f"{f(sl['lag_max_s'], '{:.2f}')} | {f(fast['fps_min'])} | {f(r['rss'])} |"
            )


if __name__ == "__main__":
    main()
