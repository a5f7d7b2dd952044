#!/usr/bin/env python3
"""What the metrics sampler costs an idle daemon: the real `steward daemon` (release build) with a private
STEWARD_HOME, left alone for a window, with the sampler at its default interval (2 s) and with it effectively
off (STEWARD_METRICS_INTERVAL_MS = one day), with no project open and with 20- and 50-module stacks up
(`sleep` modules; `--modules` changes the list). CPU is the sum of the daemon's threads' schedstat run time (ns) over the window; RSS is VmRSS at its
end. Writes bench/results/metrics.json (or --out) and prints a markdown table.

    bench/metrics_idle.py [--steward target/release/steward] [--window 30] [--modules 0,20,50] [--out FILE]
"""
import argparse, json, os, pathlib, subprocess, sys, tempfile, time

root = pathlib.Path(__file__).resolve().parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--steward", default=str(root / "target/release/steward"))
ap.add_argument("--window", type=float, default=30.0)
ap.add_argument("--modules", default="0,20,50", help="stack sizes to measure, comma-separated")
ap.add_argument("--out", default=str(root / "bench/results/metrics.json"))
args = ap.parse_args()


def run_ns(pid):
    """Run time (ns) of each live thread."""
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            out[t] = int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
        except OSError:
            pass
    return out


def used_ns(before, after):
    """CPU used between two readings: threads alive at both count their difference, new ones all of theirs.
    (A thread that exited in between takes its time with it: a summed total could even go negative.)"""
    return sum(ns - before.get(t, 0) for t, ns in after.items())


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(modules, interval_ms):
    with tempfile.TemporaryDirectory() as d:
        home = pathlib.Path(d, "home")
        env = dict(os.environ, STEWARD_HOME=str(home), STEWARD_METRICS_INTERVAL_MS=str(interval_ms))
        daemon = subprocess.Popen([args.steward, "daemon"], env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            sock = home / "run/steward.sock"
            deadline = time.time() + 20
            while not sock.exists():
                assert time.time() < deadline, "the daemon did not start"
                time.sleep(0.05)
            if modules:
                stack = pathlib.Path(d, "steward.toml")
                stack.write_text("[project]\nname = \"bench\"\n" + "".join(
                    f"[modules.m{i}]\nrun = \"sleep 3600\"\n" for i in range(modules)))
                subprocess.run([args.steward, "up", "-f", str(stack)], env=env, check=True,
                               stdout=subprocess.DEVNULL)
            time.sleep(5)  # settle: start-up, the first samples
            c0, t0 = run_ns(daemon.pid), time.monotonic()
            time.sleep(args.window)
            c1, t1 = run_ns(daemon.pid), time.monotonic()
            return {"modules": modules, "interval_ms": interval_ms,
                    "cpu_percent": round(used_ns(c0, c1) / ((t1 - t0) * 1e9) * 100, 4), "rss_kib": rss_kib(daemon.pid)}
        finally:
            subprocess.run([args.steward, "daemon", "stop"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()


OFF = 86_400_000
rows = [measure(n, interval) for n in map(int, args.modules.split(",")) for interval in (2000, OFF)]
load = os.getloadavg()[0]
result = {"steward": args.steward, "window_s": args.window, "load_average": load, "cores": os.cpu_count(), "runs": rows,
          "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
print(f"_{result['at']}, {os.cpu_count()} cores, load average {load:.2f}, window {args.window:.0f} s per run._\n")
print("| Modules running | Sampler | Daemon CPU (schedstat) | VmRSS |")
print("|---:|---|---:|---:|")
for r in rows:
    sampler = "every 2 s (default)" if r["interval_ms"] == 2000 else "off (once a day)"
    print(f"| {r['modules']} | {sampler} | {r['cpu_percent']:.3f} % of one core | {r['rss_kib'] / 1024:.1f} MiB |")
