#!/usr/bin/env python3
"""Judges a soak run (soak.sh): reads the work dir's samples.csv, restarts.txt, client-restarting.json (streams through
the upstream that restarts), client-steady.json (through the one that never does), churn.json and metrics-final.txt, prints PASS/FAIL per criterion and the figures, writes results.md, exits 1 on any FAIL."""
import argparse
import csv
import json
import os
import sys


def duration_seconds(text):
    for suffix, scale in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def metric_sum(lines, name, label=""):
    total = 0.0
    for line in lines:
        if line.startswith(name) and (line[len(name)] in "{ ") and label in line:
            total += float(line.split()[-1])
    return total


def main():
    ap = argparse.ArgumentParser()
    for name in ("work", "heartbeat"):
        ap.add_argument("--" + name, required=True)
    for name in ("streams", "warmup", "settle", "hups", "churn-rate", "interval-ms", "minutes"):
        ap.add_argument("--" + name, type=int, required=True)
    ap.add_argument("--tolerance", type=float, required=True)
    a = ap.parse_args()
    work = a.work
    duration = a.minutes * 60

    rows = list(csv.DictReader(open(os.path.join(work, "samples.csv"))))
    restarts = [float(x) for x in open(os.path.join(work, "restarts.txt")).read().split()]
    r = json.load(open(os.path.join(work, "client-restarting.json")))["reconnect"]
    s = json.load(open(os.path.join(work, "client-steady.json")))["reconnect"]
    try:
        churn = json.load(open(os.path.join(work, "churn.json")))
    except (OSError, ValueError):
        churn = None
    final_metrics = open(os.path.join(work, "metrics-final.txt")).read().splitlines()

    t0 = float(rows[0]["epoch"]) - float(rows[0]["t_s"])
    restart_t = [x - t0 for x in restarts]

    def in_settle(t):
        return any(rt <= t < rt + a.settle for rt in restart_t)

    # Judged for flatness: after warm-up, outside the settle window of each upstream restart, while the client ran.
    judged = [row for row in rows
              if float(row["t_s"]) >= a.warmup and not in_settle(float(row["t_s"]))
              and float(row["t_s"]) <= duration - 2]
    results = []

    def criterion(name, ok, detail):
        results.append((name, ok, detail))

    def flat(column, label, unit, scale=1.0):
        values = [float(row[column]) * scale for row in judged]
        if len(values) < 2:
            criterion(label + " flat", False, "fewer than 2 samples after warm-up")
            return None
        base = values[0]
        worst = max(abs(v - base) for v in values) / base * 100
        n = len(values)
        ts = [float(row["t_s"]) for row in judged]
        mt, mv = sum(ts) / n, sum(values) / n
        slope = sum((t - mt) * (v - mv) for t, v in zip(ts, values)) / max(1e-9, sum((t - mt) ** 2 for t in ts))
        detail = (f"after warm-up {base:.0f} -> {values[-1]:.0f} {unit} (min {min(values):.0f}, max {max(values):.0f}, "
                  f"worst {worst:.1f}% off, trend {slope * 600:+.1f} {unit}/10 min; {n} samples)")
        criterion(f"{label} flat within {a.tolerance:g}%", worst <= a.tolerance, detail)
        return base, values[-1], min(values), max(values), worst

    rss = flat("rss_kib", "RSS", "MiB", 1 / 1024)
    fds = flat("fds", "fds", "fds")

    held = [int(row["open_streams_held"]) for row in judged]
    criterion("open-streams gauge = held streams", bool(held) and min(held) == max(held) == a.streams,
              f"sse_gateway_open_streams{{route=\"held\"}} {min(held or [0])}..{max(held or [0])} in judged samples "
              f"(expected {a.streams})")

    # Not hit: the steady route's streams (their upstream never restarts) and any restarting-route stream no restart
    # happened to cut.
    nh = {k: s["not_hit"][k] + r["not_hit"][k] for k in ("streams", "events", "gaps", "duplicates", "reorders")}
    hit = r["hit"]
    criterion("streams not hit by a restart lose no event",
              nh["gaps"] == nh["duplicates"] == nh["reorders"] == 0 and s["disconnects"] == 0
              and s["streams_streaming_at_end"] == a.streams // 2 and s["streams_stale"] == 0,
              f"{nh['streams']} streams ({s['not_hit']['streams']} on the steady upstream), {nh['events']} events, "
              f"gaps {nh['gaps']}, duplicates {nh['duplicates']}, reorders {nh['reorders']}; steady route: "
              f"{s['disconnects']} disconnects, {s['streams_streaming_at_end']} streaming at the end, "
              f"stale {s['streams_stale']}")

    stray = 0
    for second, count in r["disconnects_by_second"].items():
        t = float(second) - t0
        if not any(rt - 1 <= t < rt + a.settle for rt in restart_t):
            stray += count
    criterion("every disconnect was an upstream restart", stray == 0 and s["disconnects"] == 0,
              f"restarting route: {r['disconnects']} disconnects, {stray} outside the {a.settle} s after one of "
              f"{len(restart_t)} restarts; steady route: {s['disconnects']} disconnects")
    criterion("streams hit resume by Last-Event-ID with no gap",
              hit["gaps"] == hit["duplicates"] == hit["reorders"] == r["rewinds"] == 0
              and r["resumes"] >= r["disconnects"] - (a.streams // 2 - r["streams_streaming_at_end"]),
              f"{hit['streams']} streams, {r['disconnects']} disconnects, {r['resumes']} resumes, {hit['events']} "
              f"events, gaps {hit['gaps']} (at a resume {r['resume_gaps']}), duplicates {hit['duplicates']}, "
              f"reorders {hit['reorders']}, rewinds {r['rewinds']}, failed retries {r['failed_retries']}")
    at_end = r["streams_streaming_at_end"] + s["streams_streaming_at_end"]
    stale = r["streams_stale"] + s["streams_stale"]
    never = r["streams_never_connected"] + s["streams_never_connected"]
    criterion("every stream held at the end, none stale", at_end == a.streams and stale == 0 and never == 0,
              f"{at_end}/{a.streams} streaming, stale {stale}, never connected {never}")

    interval = a.interval_ms / 1000
    per_event = int((interval - 0.001) // duration_seconds(a.heartbeat))
    events = nh["events"] + hit["events"]
    expected_hb = events * per_event
    comments = r["comments"] + s["comments"]
    criterion("heartbeats arrive", comments >= expected_hb * 0.5 and comments > 0,
              f"{comments} comments, about {expected_hb} expected ({per_event} per {interval:g} s event interval)")

    ok_reloads = metric_sum(final_metrics, "sse_gateway_config_reloads_total", 'result="success"')
    bad_reloads = metric_sum(final_metrics, "sse_gateway_config_reloads_total", 'result="failure"')
    criterion("every SIGHUP reloaded", ok_reloads == a.hups and bad_reloads == 0,
              f"{a.hups} SIGHUPs, reloads success {ok_reloads:.0f}, failure {bad_reloads:.0f}")

    auth_failures = metric_sum(final_metrics, "sse_gateway_auth_failures_total")
    if churn is None:
        criterion("churn", False, "no churn report")
    else:
        launched = churn["streams_launched"]
        rate = churn["succeeded"] / launched * 100 if launched else 0
        criterion("churn: >= 99% of connects get an event, no auth failure",
                  rate >= 99 and auth_failures == 0,
                  f"{churn['succeeded']}/{launched} ({rate:.2f}%) at {churn['connects_per_second']:.1f}/s, "
                  f"failed {churn['streams_failed']} (non-200 {churn['http_errors']}, connect {churn['connect_errors']},"
                  f" timeout {churn['timeouts']}), auth failures {auth_failures:.0f}, first event p99 "
                  f"{churn['time_to_first_event_micros']['p99'] / 1000:.1f} ms")

    relayed = metric_sum(final_metrics, "sse_gateway_events_relayed_total")
    first, last = rows[0], rows[-2] if len(rows) > 1 else rows[-1]
    print()
    print(f"soak verdict ({a.minutes} min, {a.streams} streams, warm-up {a.warmup} s, settle {a.settle} s):")
    for name, ok, detail in results:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")
    cpu = float(last["cpu_s"]) - float(first["cpu_s"])
    print(f"  gateway: RSS {float(first['rss_kib']) / 1024:.0f} MiB idle at start, "
          f"{max(float(x['rss_kib']) for x in rows) / 1024:.0f} MiB peak; fds {first['fds']} at start, "
          f"{max(int(x['fds']) for x in rows)} peak; CPU {cpu:.0f} s ({cpu / max(1, float(last['t_s'])) * 100:.0f}% "
          f"of one core); events relayed {relayed:.0f}")
    failed = [name for name, ok, _ in results if not ok]
    print("soak: PASS" if not failed else f"soak: FAIL ({len(failed)} of {len(results)} criteria)")

    with open(os.path.join(work, "results.md"), "w") as out:
        out.write("| criterion | verdict | figures |\n| --- | --- | --- |\n")
        for name, ok, detail in results:
            out.write(f"| {name} | {'PASS' if ok else 'FAIL'} | {detail} |\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
