#!/usr/bin/env python3
"""The tray app's cost and reaction time (run by `bench/run tray`; see bench/README.md).

On a virtual display (Xvfb, a private D-Bus bus, trayer as the tray host) with the release binaries:
  - RSS of the tray process with no window open (target <= 40 MB), sampled after it settled, with its PSS,
    USS and the largest mappings (from /proc/PID/smaps);
  - RSS of every process of the tray's tree with the dashboard open (opened from the tray menu: the tray, the
    windows process it starts, WebKit's helpers), and again after the window was closed (the windows process
    exits then; the figure is taken once it has);
  - crash -> icon latency: a module's process group is SIGKILLed at t0 (wall clock, ms); the app appends
    `<epoch ms> <state>` to STEWARD_TRAY_STATE_FILE where it sets the icon (main thread); latency = first
    non-green line at or after t0, minus t0 (target <= 200 ms);
  - the sizes of both release binaries (steward-tray, steward-tray-windows).
Writes a JSON result and a markdown fragment for docs/performance.md. Python stdlib only.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WM_CLOSE = os.path.join(ROOT, "tray-app", "tests", "wm_close.py")
RSS_TARGET_MB = 40
LATENCY_TARGET_MS = 200


class Failed(Exception):
    """The benchmark could not run (exit 2: bench/run then leaves docs/performance.md alone)."""


def now_ms():
    return int(time.time() * 1000)


def wait(what, timeout, cond, step=0.005):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failed(f"bench/tray: timed out waiting for {what}")
        time.sleep(step)


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rollup_kb(pid):
    """Pss and private (USS) memory from /proc/PID/smaps_rollup, in KiB."""
    fields = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if v.strip().endswith("kB"):
                    fields[k] = int(v.split()[0])
    except OSError:
        pass
    return fields.get("Pss", 0), fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


def smaps_top(pid, n=8):
    """The n largest mappings by Rss (MiB), by file name ([heap], [anon] for the rest of anonymous memory)."""
    by, name = {}, None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                parts = line.split()
                if parts and "-" in parts[0] and not parts[0].endswith(":"):
                    name = parts[5].rsplit("/", 1)[-1] if len(parts) > 5 else "[anon]"
                elif parts and parts[0] == "Rss:" and name:
                    by[name] = by.get(name, 0) + int(parts[1])
    except OSError:
        pass
    return [(k, round(v / 1024, 1)) for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:n]]


def descendants(root):
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def proc_name(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def sample_rss(pid, seconds, tree=False):
    """Median of 1 Hz samples (MiB) of the process (or its tree), with the per-process split of the last."""
    samples, split = [], {}
    for _ in range(max(1, int(seconds))):
        pids = descendants(pid) if tree else [pid]
        split = {f"{proc_name(p)}[{p}]": rss_kb(p) / 1024 for p in pids}
        samples.append(sum(split.values()))
        time.sleep(1)
    return statistics.median(samples), split


def free_display():
    for n in range(120, 220):
        if not os.path.exists(f"/tmp/.X{n}-lock") and not os.path.exists(f"/tmp/.X11-unix/X{n}"):
            return n
    raise Failed("bench/tray: no free X display")


def xdotool(display, *args, check=True):
    return subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, capture_output=True, text=True, check=check)


def tray_windows(display):
    """Geometries (x, y, w, h) of the tray process's visible windows."""
    r = xdotool(display, "search", "--onlyvisible", "--name", "^steward-tray$", "getwindowgeometry", "--shell", "%@", check=False)
    out, cur = [], {}
    for line in r.stdout.splitlines():
        k, _, v = line.partition("=")
        if k in ("X", "Y", "WIDTH", "HEIGHT"):
            cur[k] = int(v)
            if k == "HEIGHT":
                out.append((cur["X"], cur["Y"], cur["WIDTH"], cur["HEIGHT"]))
    return out


def is_icon(x, y, w, h):
    """The icon's window in the tray host (GTK also maps 10×10 helper windows off screen)."""
    return 16 <= w <= 40 and 16 <= h <= 40 and x >= 0 and y >= 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tray", required=True)
    ap.add_argument("--windows", help="the steward-tray-windows binary (default: next to --tray, where the tray looks)")
    ap.add_argument("--steward", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--crashes", type=int)
    args = ap.parse_args()
    crashes = args.crashes or (5 if args.quick else 20)
    settle = 3 if args.quick else 10
    for tool in ("Xvfb", "dbus-daemon", "trayer", "xdotool"):
        if not shutil.which(tool):
            raise Failed(f"bench/tray: `{tool}` is not installed (./scripts/test installs it)")
    windows_bin = args.windows or os.path.join(os.path.dirname(os.path.abspath(args.tray)), "steward-tray-windows")
    if not os.path.isfile(windows_bin):
        raise Failed(f"bench/tray: {windows_bin} is missing: cargo build --release -p steward-tray-windows")

    work = tempfile.mkdtemp(prefix="steward-tray-bench-")
    home = os.path.join(work, "home")
    stack_dir = os.path.join(work, "stack")
    os.makedirs(stack_dir)
    modules = 5
    with open(os.path.join(stack_dir, "steward.toml"), "w") as f:
        f.write('[project]\nname = "bench"\n\n[defaults]\nrestart = { policy = "always", backoff = "500ms..500ms" }\n\n')
        for i in range(modules):
            f.write(f'[modules.m{i}]\nrun = "sleep 3600"\n\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_") and k != "WAYLAND_DISPLAY"}
    env["STEWARD_HOME"] = home
    procs = []

    def spawn(cmd, **kw):
        p = subprocess.Popen(cmd, stdout=kw.pop("stdout", subprocess.DEVNULL), stderr=kw.pop("stderr", subprocess.DEVNULL), **kw)
        procs.append(p)
        return p

    try:
        n = free_display()
        display = f":{n}"
        spawn(["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
        wait("Xvfb", 10, lambda: os.path.exists(f"/tmp/.X11-unix/X{n}"), 0.02)
        dbus = spawn(["dbus-daemon", "--session", "--nofork", "--print-address=1", "--nopidfile"], stdout=subprocess.PIPE)
        bus = dbus.stdout.readline().decode().strip()
        env.update(DISPLAY=display, DBUS_SESSION_BUS_ADDRESS=bus, WEBKIT_DISABLE_COMPOSITING_MODE="1")
        spawn(["trayer", "--edge", "top", "--align", "right", "--widthtype", "request", "--height", "32"], env=env)
        subprocess.run([args.steward, "up"], cwd=stack_dir, env=env, check=True, capture_output=True)

        states = os.path.join(work, "icon-states")
        smoke = os.path.join(work, "page.txt")
        tray_env = {**env, "STEWARD_BIN": args.steward, "STEWARD_TRAY_WINDOWS": windows_bin,
                    "STEWARD_TRAY_STATE_FILE": states, "STEWARD_TRAY_SMOKE_FILE": smoke}
        log = open(os.path.join(work, "tray.log"), "w")
        t_launch = time.monotonic()
        tray = spawn([args.tray], env=tray_env, stdout=log, stderr=log)

        def icon_lines():
            try:
                with open(states) as f:
                    return [(int(a), b) for a, b in (l.split() for l in f if l.strip())]
            except FileNotFoundError:
                return []

        wait("the all-running icon", 30, lambda: icon_lines() and icon_lines()[-1][1] == "all-running")
        startup_ms = (time.monotonic() - t_launch) * 1000
        wait("the icon in the tray host", 20, lambda: any(is_icon(*g) for g in tray_windows(display)), 0.05)
        time.sleep(settle)  # let the app settle before measuring its memory (a benchmark, not a test)
        if len(descendants(tray.pid)) != 1:
            raise Failed("bench/tray: the idle tray has child processes")
        idle_mb, idle_split = sample_rss(tray.pid, 5)
        pss_kb, uss_kb = rollup_kb(tray.pid)
        idle_top = smaps_top(tray.pid)

        # Crash -> icon.
        latencies = []
        for i in range(crashes):
            status = json.loads(subprocess.run([args.steward, "status", "--json"], env=env, capture_output=True, text=True, check=True).stdout)
            mods = status["projects"][0]["modules"]
            m = mods[i % len(mods)]
            wait("all modules running", 20, lambda: icon_lines()[-1][1] == "all-running", 0.01)
            t0 = now_ms()
            os.killpg(m["pid"], signal.SIGKILL)
            hit = wait("the icon to change", 10, lambda: next((ts for ts, h in icon_lines() if ts >= t0 and h != "all-running"), None), 0.002)
            latencies.append(hit - t0)
            # Recovery: restarted after its backoff; the icon is green again.
            wait("the recovery", 20, lambda: any(ts > hit and h == "all-running" for ts, h in icon_lines()), 0.01)

        # The dashboard, opened from the tray menu (project, Search Memory…, Open Dashboard).
        for attempt in range(5):  # a click that races the icon's embedding is lost: click again
            icon = next((x + w // 2, y + h // 2) for x, y, w, h in tray_windows(display) if is_icon(x, y, w, h))
            xdotool(display, "mousemove", str(icon[0]), str(icon[1]), "click", "1")
            try:
                wait("the tray menu", 2, lambda: any(h > 40 for *_, h in tray_windows(display)), 0.02)
                break
            except Failed:
                if attempt == 4:
                    raise
        xdotool(display, "key", "Down", "Down", "Down", "Return")
        t_open = time.monotonic()

        def page_ready():
            try:
                with open(smoke) as f:
                    text = f.read()
            except FileNotFoundError:
                return False
            return sum(1 for l in text.splitlines() if l.startswith("m") and "running" in l) == modules

        wait("the dashboard showing every module", 60, page_ready, 0.01)
        dashboard_ms = (time.monotonic() - t_open) * 1000
        time.sleep(settle)
        open_mb, open_split = sample_rss(tray.pid, 5, tree=True)
        ids = xdotool(display, "search", "--name", "Steward — Dashboard").stdout.split()
        subprocess.run([sys.executable, WM_CLOSE, *ids], env=env, check=True)
        wait("the dashboard to close", 10, lambda: xdotool(display, "search", "--onlyvisible", "--name", "Steward — Dashboard", check=False).returncode != 0, 0.05)
        t_close = time.monotonic()
        wait("the windows process to exit", 30, lambda: descendants(tray.pid) == [tray.pid], 0.02)
        windows_exit_ms = (time.monotonic() - t_close) * 1000
        time.sleep(settle)
        closed_mb, closed_split = sample_rss(tray.pid, 5, tree=True)
        if tray.poll() is not None:
            raise Failed("bench/tray: the tray app exited when its window closed")

        size = os.path.getsize(args.tray)
        windows_size = os.path.getsize(windows_bin)
        lat = sorted(latencies)
        p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
        result = {
            "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()[0]},
            "quick": args.quick,
            "modules": modules,
            "startupToIconMs": round(startup_ms),
            "idleRssMiB": round(idle_mb, 1),
            "idleRssSplit": {k: round(v, 1) for k, v in idle_split.items()},
            "idlePssMiB": round(pss_kb / 1024, 1),
            "idleUssMiB": round(uss_kb / 1024, 1),
            "idleLargestMappingsMiB": dict(idle_top),
            "dashboardOpenMs": round(dashboard_ms),
            "dashboardRssMiB": round(open_mb, 1),
            "dashboardRssSplit": {k: round(v, 1) for k, v in open_split.items()},
            "afterCloseRssMiB": round(closed_mb, 1),
            "afterCloseRssSplit": {k: round(v, 1) for k, v in closed_split.items()},
            "windowsExitAfterCloseMs": round(windows_exit_ms),
            "crashToIconMs": {"n": len(lat), "median": statistics.median(lat), "p95": p95, "max": lat[-1], "all": latencies},
            "releaseBinaryBytes": size,
            "releaseWindowsBinaryBytes": windows_size,
            "targets": {
                "idleRssMiB": RSS_TARGET_MB,
                "idleRssPass": idle_mb <= RSS_TARGET_MB,
                "crashToIconMs": LATENCY_TARGET_MS,
                "crashToIconPass": p95 <= LATENCY_TARGET_MS,
            },
        }
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        ok = lambda b: "met" if b else "**missed**"
        with open(args.md, "w") as f:
            f.write(
                f"Release build, {modules} modules, on Xvfb with trayer hosting the icon, 2-core VM (load {result['machine']['loadavg']:.1f} "
                f"at the start); `bench/run tray`:\n\n"
                "| Figure | Value | Target |\n|---|---|---|\n"
                f"| tray RSS, no window open (median of 5 samples after {settle} s) | {idle_mb:.1f} MiB | ≤ {RSS_TARGET_MB} MiB: {ok(result['targets']['idleRssPass'])} |\n"
                f"| same, private memory (USS) / proportional (PSS) | {uss_kb / 1024:.1f} / {pss_kb / 1024:.1f} MiB | report |\n"
                f"| all processes (tray, windows process, WebKit's), dashboard open | {open_mb:.1f} MiB | report |\n"
                f"| all processes, after closing the dashboard (the windows process exited {windows_exit_ms:.0f} ms after the close) | {closed_mb:.1f} MiB | report |\n"
                f"| module crash (SIGKILL) → tray icon changed, {len(lat)} crashes | median {statistics.median(lat):.0f} ms, p95 {p95} ms, max {lat[-1]} ms | p95 ≤ {LATENCY_TARGET_MS} ms: {ok(result['targets']['crashToIconPass'])} |\n"
                f"| start → icon shows the daemon's state | {startup_ms:.0f} ms | report |\n"
                f"| menu → dashboard showing every module | {dashboard_ms:.0f} ms | report |\n"
                f"| release binaries (stripped): `steward-tray` / `steward-tray-windows` | {size / 1048576:.1f} / {windows_size / 1048576:.1f} MiB | report |\n"
            )
            f.write("\nThe idle tray's largest mappings (RSS): " + ", ".join(f"{k} {v:.1f} MiB" for k, v in idle_top) + ".\n")
            f.write("\nWith the dashboard open, by process: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in open_split.items()) + ".\n")
        print(json.dumps(result))
        passed = result["targets"]["idleRssPass"] and result["targets"]["crashToIconPass"]
        return 0 if passed else 1
    finally:
        subprocess.run([args.steward, "daemon", "stop"], env=env, capture_output=True)
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as e:
        print(e, file=sys.stderr)
        sys.exit(2)
