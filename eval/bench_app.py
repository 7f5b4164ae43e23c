"""Latency and memory of the Space as served: the app in-process on loopback, called through its API.

    python eval/bench_app.py --json runs/bench_app.json
    python eval/bench_app.py --adapter none          # the embedded SmolLM2 alone, as measured before the default adapter

The app (`python space/app.py`, its default settings: the embedded SmolLM2-135M + the shipped adapter, on the CPU)
starts as its own process on a free port of 127.0.0.1, as `make demo` runs it, so the clients
here do not share its interpreter. The model loads with the first request, which is timed
apart; a few more calls warm up. Then, every call a `gradio_client.Client` round trip to
/classify: (a) N sequential calls from one client; (b) 20 clients, each its own `Client` on its
own thread, 5 calls each, all started together under one time limit; latencies there include
the wait in the app's queue. (c) is the app process's peak resident memory (VmHWM).
Goals: p50 < 150 ms single; p95 < 1 s with 20 clients and no errors; peak RSS < 1.5 GB.
(d) the explanation: one client alternates /classify and /explain_headline (space/explain.py) on one 12-word
headline, so both meet the same machine state; the goal is explain_headline's p50 at most 2x /classify's.
The Headline tab with its checkbox ticked makes the explanation's call alone: it gives the label too.

    python eval/bench_app.py --skip_concurrent --json runs/bench_app_explain.json   # (a), (c) and (d) only
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout

HEADLINES = [  # written for this benchmark; fictional companies
    "Halvard Shipping books record first-quarter freight revenue",
    "Corvin Steel idles two furnaces as demand weakens",
    "Lumeo Telecom names a new chief financial officer",
    "Brisa Foods recalls frozen meals, shares drop 8%",
    "Aaltomere Energy signs a ten-year wind power deal",
    "Pellin Retail keeps its dividend unchanged at EUR 0.40",
    "Mirova Pharma's cancer drug fails a late-stage trial",
    "Oskari Bank lifts its net interest income outlook",
    "Tessel Logistics opens a distribution centre in Tampere",
    "Vardon Mining swings to a loss on lower copper prices",
    "Quill Software's subscription sales grow 23% year on year",
    "Nordhem Construction to lay off 120 workers in Sweden",
    "Saimaa Packaging will hold its annual general meeting on 14 March",
    "Eskerby Airlines cuts winter capacity after fuel costs surge",
    "Fennic Insurance completes its acquisition of a Baltic rival",
    "Rautio Machinery's order backlog shrinks to a three-year low",
    "Kielo Textiles moves its headquarters to Helsinki",
    "Granlund Chemicals beats profit estimates on strong exports",
    "Ylva Media misses revenue targets as advertising slows",
    "Torvik Foods plans to list its shares on Nasdaq Helsinki",
]
EXPLAINED = "Kessel Bank sets aside another EUR 300 million for bad loan losses"  # 12 words, fictional
GOALS = {"single_p50_ms": 150, "concurrent_p95_ms": 1000, "peak_rss_mb": 1500, "explain_over_plain": 2.0}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base_model", help="base model id or folder (default: the adapter's base, else the embedded SmolLM2-135M)")
    parser.add_argument("--adapter", help="LoRA adapter folder or Hub id, or `none` (default: the app's, the shipped one)")
    parser.add_argument("--concurrency", type=int, help="requests the app serves at once (default: the app's, 1)")
    parser.add_argument("--calls", type=int, default=50, help="sequential calls in (a)")
    parser.add_argument("--warmup", type=int, default=5, help="calls after the first, left out of every figure")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients in (b)")
    parser.add_argument("--calls_per_client", type=int, default=5, help="calls each client makes in (b)")
    parser.add_argument("--time_limit", type=float, default=300, help="seconds (b) may take in all; later calls count as errors")
    parser.add_argument("--explain_calls", type=int, default=30, help="calls of each kind in (d)")
    parser.add_argument("--skip_concurrent", action="store_true", help="leave out (b) and (b')")
    parser.add_argument("--json", help="also write the results to this file")
    return parser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentiles(ms: list[float]) -> dict:
    if not ms:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}
    cuts = statistics.quantiles(ms, n=20, method="inclusive") if len(ms) > 1 else [ms[0]] * 19
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 1), "p95_ms": round(cuts[18], 1),
            "max_ms": round(max(ms), 1)}


def get_client(url: str):
    from gradio_client import Client

    # analytics_enabled=False alone is not enough: the client also reads GRADIO_ANALYTICS_ENABLED (set in main)
    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


class PlainClient:
    """The same /classify call over Gradio's plain HTTP API (POST, then read the event stream): no
    gradio_client machinery, so that on 2 cores the 20 clients leave the app some CPU."""

    def __init__(self, url: str):
        import httpx

        self.url, self.http = url, httpx.Client(timeout=120)

    def submit(self, headline: str, api_name: str):
        event = self.http.post(f"{self.url}gradio_api/call{api_name}", json={"data": [headline]}).json()["event_id"]
        with self.http.stream("GET", f"{self.url}gradio_api/call{api_name}/{event}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: error"):
                    raise RuntimeError(f"the app answered with an error for {headline!r}")
                if line.startswith("event: complete"):
                    return self
        raise RuntimeError("the event stream ended without a result")

    def result(self, timeout=None):  # submit() already waited
        return self

    def close(self):
        self.http.close()


def timed_call(client, headline: str, timeout: float | None = None, api_name: str = "/classify") -> float:
    start = time.perf_counter()
    client.submit(headline, api_name=api_name).result(timeout=timeout)
    return (time.perf_counter() - start) * 1000


def explain_calls(url: str, calls: int, warmup: int) -> dict:
    """(d): /classify and /explain_headline alternated on EXPLAINED; their percentiles and the ratio of p50s."""
    client = get_client(url)
    times = {"/classify": [], "/explain_headline": []}
    try:
        for i in range(warmup + calls):
            for api_name, kept in times.items():
                ms = timed_call(client, EXPLAINED, timeout=120, api_name=api_name)
                if i >= warmup:
                    kept.append(ms)
    finally:
        client.close()
    plain, why = percentiles(times["/classify"]), percentiles(times["/explain_headline"])
    return {"headline_words": len(EXPLAINED.split()), "classify": plain, "explain_headline": why,
            "explain_over_plain": round(why["p50_ms"] / plain["p50_ms"], 2)}


def sequential_calls(url: str, calls: int) -> list[float]:
    client = get_client(url)
    try:
        return [timed_call(client, HEADLINES[i % len(HEADLINES)], timeout=60) for i in range(calls)]
    finally:
        client.close()


def concurrent_calls(url: str, clients: int, calls_per_client: int, time_limit: float,
                     make_client=get_client) -> tuple[list[float], list[str], float]:
    """Every client on its own thread, all released together; latencies, errors, wall seconds."""
    latencies, errors, lock = [], [], threading.Lock()
    connected = [make_client(url) for _ in range(clients)]  # connecting (fetching the config) is not timed
    start_line = threading.Barrier(clients + 1)
    deadline = [0.0]

    def run(index, client):
        start_line.wait()
        for call in range(calls_per_client):
            left = deadline[0] - time.perf_counter()
            try:
                if left <= 0:
                    raise FutureTimeout()
                ms = timed_call(client, HEADLINES[(index * calls_per_client + call) % len(HEADLINES)], timeout=left)
                with lock:
                    latencies.append(ms)
            except FutureTimeout:
                with lock:
                    errors.append(f"client {index} call {call}: over the {time_limit:g} s limit")
            except Exception as err:  # the app's or the transport's error: counted, the run goes on
                with lock:
                    errors.append(f"client {index} call {call}: {type(err).__name__}: {err}")

    threads = [threading.Thread(target=run, args=(i, c), daemon=True) for i, c in enumerate(connected)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + time_limit
    begin = time.perf_counter()
    start_line.wait()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline[0] - time.perf_counter()) + 5)
    wall = time.perf_counter() - begin
    for client in connected:
        client.close()
    return latencies, errors, wall


def peak_rss_mb(pid: int) -> float:
    """The process's resident-memory high-water mark (Linux /proc), in MB (10^6 bytes)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmHWM for process {pid}")


def start_app(args, port: int):
    """`python space/app.py` on `port`, and a client once it answers."""
    import subprocess
    import sys
    from pathlib import Path

    command = [sys.executable, str(Path(__file__).resolve().parents[1] / "space" / "app.py"), "--port", str(port)]
    for flag in ("base_model", "adapter", "concurrency"):
        if getattr(args, flag) is not None:
            command += [f"--{flag}", str(getattr(args, flag))]
    app = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.perf_counter() + 180
    while True:
        try:
            return app, get_client(f"http://127.0.0.1:{port}/")
        except Exception:  # not listening yet
            if app.poll() is not None or time.perf_counter() > deadline:
                app.kill()
                raise RuntimeError(f"the app did not start: {' '.join(command)}") from None
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read by gr.Blocks and the Client: loopback only
    import gradio
    import torch

    from finsent.train.bench_throughput import machine

    print(f"bench_app: {vars(args)}", flush=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    begin = time.perf_counter()
    app, client = start_app(args, port)
    try:
        ready_s = time.perf_counter() - begin
        first_ms = timed_call(client, HEADLINES[0], timeout=600)  # loads the model
        for i in range(args.warmup):
            timed_call(client, HEADLINES[i % len(HEADLINES)], timeout=120)
        client.close()
        print(f"ready in {ready_s:.2f} s; first call (loads the model) {first_ms:.0f} ms", flush=True)

        single = percentiles(sequential_calls(url, args.calls))
        print(f"(a) sequential: {json.dumps(single)}", flush=True)
        explained = explain_calls(url, args.explain_calls, args.warmup)
        print(f"(d) explanation: {json.dumps(explained)}", flush=True)
        many, errors, plain, plain_errors = {**percentiles([]), "errors": 0}, [], {**percentiles([]), "errors": 0}, []
        if not args.skip_concurrent:
            latencies, errors, wall = concurrent_calls(url, args.clients, args.calls_per_client, args.time_limit)
            many = {**percentiles(latencies), "errors": len(errors), "wall_s": round(wall, 2),
                    "calls_per_s": round(len(latencies) / wall, 2)}
            print(f"(b) {args.clients} clients: {json.dumps(many)}", flush=True)
            for error in errors[:5]:
                print(f"    {error}")
            plain_latencies, plain_errors, plain_wall = concurrent_calls(url, args.clients, args.calls_per_client,
                                                                         args.time_limit, make_client=PlainClient)
            plain = {**percentiles(plain_latencies), "errors": len(plain_errors), "wall_s": round(plain_wall, 2),
                     "calls_per_s": round(len(plain_latencies) / plain_wall, 2)}
            print(f"(b') {args.clients} plain HTTP clients: {json.dumps(plain)}", flush=True)
            for error in plain_errors[:5]:
                print(f"    {error}")
        peak = peak_rss_mb(app.pid)
    finally:
        app.terminate()
        app.wait(timeout=30)

    results = {
        "machine": {**machine(), "gradio": gradio.__version__, "torch_threads": torch.get_num_threads()},
        "settings": {"base_model": args.base_model, "adapter": args.adapter, "concurrency": args.concurrency},
        "ready_s": round(ready_s, 2), "first_call_ms": round(first_ms, 1),
        "single": single, "concurrent": {"clients": args.clients, "calls_per_client": args.calls_per_client, **many},
        "concurrent_plain_http": {"clients": args.clients, "calls_per_client": args.calls_per_client, **plain},
        "peak_rss_mb": round(peak, 1), "explanation": explained,
        "goals": GOALS,
    }
    met = {
        "single_p50_ms": single["p50_ms"] is not None and single["p50_ms"] < GOALS["single_p50_ms"],
        "concurrent_p95_ms": many["p95_ms"] is not None and many["p95_ms"] < GOALS["concurrent_p95_ms"]
        and not errors,
        "peak_rss_mb": results["peak_rss_mb"] < GOALS["peak_rss_mb"],
        "explain_over_plain": explained["explain_over_plain"] <= GOALS["explain_over_plain"],
    }
    results["met"] = met

    yes = {True: "yes", False: "**no**"}
    print(f"\n{json.dumps(results['machine'])}\n")
    print("| measure | p50 ms | p95 ms | max ms | calls | errors | goal | met |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    print(f"| first call (loads the model) | {results['first_call_ms']} | | | 1 | 0 | | |")
    print(f"| (a) /classify, 1 client, sequential | {single['p50_ms']} | {single['p95_ms']} | {single['max_ms']} "
          f"| {single['n']} | 0 | p50 < {GOALS['single_p50_ms']} ms | {yes[met['single_p50_ms']]} |")
    if not args.skip_concurrent:
        print(f"| (b) /classify, {args.clients} clients x {args.calls_per_client} calls | {many['p50_ms']} | "
              f"{many['p95_ms']} | {many['max_ms']} | {many['n']} | {many['errors']} | p95 < {GOALS['concurrent_p95_ms']} ms, "
              f"no errors | {yes[met['concurrent_p95_ms']]} |")
        plain_met = plain["p95_ms"] is not None and plain["p95_ms"] < GOALS["concurrent_p95_ms"] and not plain_errors
        print(f"| (b') /classify, {args.clients} plain HTTP clients x {args.calls_per_client} calls | {plain['p50_ms']} | "
              f"{plain['p95_ms']} | {plain['max_ms']} | {plain['n']} | {plain['errors']} | p95 < "
              f"{GOALS['concurrent_p95_ms']} ms, no errors | {yes[plain_met]} |")
    print(f"| (d) /explain_headline, {explained['headline_words']} words, alternated with /classify "
          f"({explained['classify']['p50_ms']} ms) | {explained['explain_headline']['p50_ms']} | "
          f"{explained['explain_headline']['p95_ms']} | {explained['explain_headline']['max_ms']} | "
          f"{explained['explain_headline']['n']} | 0 | at most {GOALS['explain_over_plain']:g}x /classify: "
          f"{explained['explain_over_plain']}x | {yes[met['explain_over_plain']]} |")
    print(f"| (c) peak resident memory of the app process | {results['peak_rss_mb']} MB | | | | | "
          f"< {GOALS['peak_rss_mb']} MB | {yes[met['peak_rss_mb']]} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
