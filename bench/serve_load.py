"""Load on `llm2vec serve`: N concurrent clients on loopback, against in-process `encode()` of the same
texts and, side by side, infinity-emb serving the same weights.

    .venv/bin/python bench/serve_load.py [--limit 1024] [--clients 16] [--texts-per-request 8] [--json out.json]

Data: the first `--limit` unique STS-B test sentences. Model: `--model` (default: the bundled encoder,
SmolLM2-135M + its LLM2Vec adapters), fp32, CPU unless CUDA is there. Rows:

- in-process: `encode(texts, batch_size=32, normalize_embeddings=True)`, the reference throughput.
- in-process, calls of K: the same texts in calls of K, K the server's mean texts per encode call (from its
  /metrics): the control that tells what the server adds from what its smaller calls cost.
- llm2vec serve: the server in its own process (`llm2vec serve`, 127.0.0.1); `--clients` asyncio
  clients (httpx, base64 as the openai client asks) each take the next `--texts-per-request` texts
  until all are sent: throughput (texts/s) as a ratio to in-process (goal >= 0.85), p50 / p99 request
  latency, errors (goal: 0, the load is within the limits), the min cosine to in-process, and from
  /metrics the encode calls, their mean size and the share of the time the encoder was busy.
- infinity-emb (`--infinity`, a separate venv with transformers 4.x): the same weights merged into one
  folder (viewed for transformers 4.x by the shared t444 tool), served by `infinity_emb v2`, the same
  load. It pools with sentence-transformers' generic path (causal attention, no instruction handling),
  so only its speed is comparable; if it cannot start here, the reason is printed.
- overload: a server with a small queue (`--overload-queue-tokens`) and `--overload-clients` clients:
  requests beyond the queue are refused with 429 (back-pressure), never a 5xx or a dropped
  connection; accepted requests are still correct.

Both servers start first and wait idle (warmed up); then `--rounds` rounds run the first three rows one
after the other, and the best of each row is compared: the machine is shared and its load changes, so
rows of one round, alternated, are what is fair. The load average is printed with every run.
Every request loop is bounded in count (each text is sent once) and in time (`--max-seconds` per phase).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, T444_TOOL, stsb_sentences  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INFINITY = Path("/tmp/infvenv/bin/infinity_emb")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A server child process on 127.0.0.1, its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, argv: list[str], port: int, log: Path, env: dict | None = None) -> None:
        self.port, self.log = port, log
        self.url = f"http://127.0.0.1:{port}"
        self._log_file = open(log, "w")
        self.proc = subprocess.Popen(argv, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))

    def wait_healthy(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}: {self.tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"not healthy after {timeout:.0f} s: {self.tail()}")

    def tail(self, lines: int = 8) -> str:
        self._log_file.flush()
        return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


async def run_load(url: str, model: str, texts: list[str], clients: int, per_request: int,
                   max_seconds: float, dim: int) -> dict:
    """Send every text once, `per_request` per request, from `clients` concurrent clients."""
    import httpx

    chunks = [(i, texts[i:i + per_request]) for i in range(0, len(texts), per_request)]
    rows = np.full((len(texts), dim), np.nan, dtype=np.float32)
    latencies, statuses, next_chunk = [], {}, iter(chunks)
    deadline = time.monotonic() + max_seconds

    async def client(http: httpx.AsyncClient) -> None:
        for start, chunk in next_chunk:  # shared iterator: each chunk goes to exactly one client
            if time.monotonic() > deadline:
                statuses["not sent (time limit)"] = statuses.get("not sent (time limit)", 0) + 1
                continue
            t0 = time.perf_counter()
            try:
                response = await http.post("/v1/embeddings", json={"model": model, "input": chunk,
                                                                   "encoding_format": "base64"})
                status = response.status_code
            except httpx.TransportError as err:
                status = type(err).__name__
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                for item in response.json()["data"]:
                    rows[start + item["index"]] = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")

    timeout = httpx.Timeout(max_seconds)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - t0
    ok = ~np.isnan(rows).any(axis=1)
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    return {"seconds": wall, "texts_ok": int(ok.sum()), "texts_per_s": float(ok.sum() / wall),
            "requests": len(latencies), "statuses": {str(k): v for k, v in statuses.items()},
            "errors": sum(v for k, v in statuses.items() if k != 200),
            "p50_s": float(np.percentile(lat, 50)), "p99_s": float(np.percentile(lat, 99)), "rows": rows, "ok": ok}


def encoder_counters(url: str) -> dict:
    """The server's encode-call counters from /metrics: calls, inputs, seconds spent encoding."""
    import httpx

    values = {}
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return {"calls": values["llm2vec_batch_inputs_count"], "inputs": values["llm2vec_batch_inputs_sum"],
            "seconds": values["llm2vec_encode_duration_seconds_sum"]}


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).min()) if len(a) else float("nan")


def serve_argv(args, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "llm2vec_plugins.cli.main", "serve", "--model", args.model,
            *(["--peft-model", args.peft_model] if args.peft_model else []), "--served-model-name", "bench",
            "--host", "127.0.0.1", "--port", str(port), "--max-batch-tokens", str(args.max_batch_tokens),
            "--batch-wait-ms", str(args.batch_wait_ms), *extra]


def print_row(name: str, r: dict, reference: float) -> None:
    print(f"{name:<22} {r['seconds']:>8.1f} {r['texts_per_s']:>9.1f} {r['texts_per_s'] / reference:>7.2f} "
          f"{r['p50_s']:>8.2f} {r['p99_s']:>8.2f} {r['errors']:>7d}  {r['statuses']}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-llm2vec")
    parser.add_argument("--peft-model", default=None)
    parser.add_argument("--limit", type=int, default=512, help="STS-B sentences to send")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--texts-per-request", type=int, default=8)
    parser.add_argument("--max-batch-tokens", type=int, default=16384, help="the server's per-call token budget")
    parser.add_argument("--batch-wait-ms", type=float, default=0.0, help="the server's --batch-wait-ms")
    parser.add_argument("--overload-clients", type=int, default=64)
    parser.add_argument("--overload-queue-tokens", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best of each row counts")
    parser.add_argument("--max-seconds", type=float, default=300, help="time limit of each load phase")
    parser.add_argument("--infinity", default=INFINITY, help="infinity_emb executable ('' to skip)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from llm2vec_plugins import LLM2Vec

    texts = stsb_sentences()[: args.limit]
    report: dict = {"texts": len(texts), "clients": args.clients, "texts_per_request": args.texts_per_request,
                    "max_batch_tokens": args.max_batch_tokens, "batch_wait_ms": args.batch_wait_ms,
                    "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    print(f"{len(texts)} STS-B sentences, {args.clients} clients x {args.texts_per_request} texts per request, "
          f"server --max-batch-tokens {args.max_batch_tokens} --batch-wait-ms {args.batch_wait_ms:g}, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}", flush=True)

    model = LLM2Vec.from_pretrained(args.model, args.peft_model)
    dim = model.embedding_dim
    tmp = Path(tempfile.mkdtemp(prefix="llm2vec-serve-bench-"))
    merged = None
    if args.infinity and Path(args.infinity).is_file():  # '' skips it
        merged = tmp / "merged"
        model.save(merged, merge_before_save=True)  # one folder infinity can load (it knows no adapters)
        model = LLM2Vec.from_pretrained(args.model, args.peft_model)  # save() merged this one's adapters
    model.encode(texts[:32], batch_size=32)

    # The servers start first and wait idle, so that the rounds can alternate between the rows: on a
    # shared machine the load changes, and the best of each row over the rounds is what is compared.
    servers: dict[str, Process] = {}
    try:
        port = free_port()
        servers["llm2vec serve"] = Process(serve_argv(args, port), port, tmp / "serve.log")
        if merged is not None:
            view = tmp / "merged-t4"
            subprocess.run([sys.executable, os.fspath(T444_TOOL), os.fspath(merged), os.fspath(view)], check=True,
                           stdout=subprocess.DEVNULL)
            port = free_port()
            servers["infinity-emb"] = Process(
                [os.fspath(args.infinity), "v2", "--model-id", os.fspath(view), "--served-model-name", "bench",
                 "--engine", "torch", "--device", "cpu", "--batch-size", "32", "--host", "127.0.0.1",
                 "--port", str(port), "--url-prefix", "/v1", "--no-model-warmup", "--log-level", "warning"],
                port, tmp / "infinity.log", env={"HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"})
        unavailable = {}
        for name, server in list(servers.items()):
            try:
                server.wait_healthy(300)
                asyncio.run(run_load(server.url, "bench", texts[:64], args.clients, args.texts_per_request, 120, dim))
            except RuntimeError as err:
                unavailable[name] = f"could not serve the model here: {err}"
                servers.pop(name).stop()
        if merged is None:
            unavailable["infinity-emb"] = (f"not run: {args.infinity} not found (see the docstring)"
                                           if str(args.infinity) not in ("", ".") else "skipped (--infinity '')")

        runs: dict[str, list] = {"in-process encode()": [], **{name: [] for name in servers}}
        for round_ in range(args.rounds):
            t0 = time.perf_counter()
            expected = model.encode(texts, batch_size=32, normalize_embeddings=True)
            runs["in-process encode()"].append({"seconds": time.perf_counter() - t0, "load": os.getloadavg()[0]})
            for name, server in servers.items():
                before = encoder_counters(server.url) if name == "llm2vec serve" else None
                result = asyncio.run(run_load(server.url, "bench", texts, args.clients, args.texts_per_request,
                                              args.max_seconds, dim))
                result["load"] = os.getloadavg()[0]
                if before is not None:
                    after = encoder_counters(server.url)
                    calls = after["calls"] - before["calls"]
                    result["encode_calls"] = int(calls)
                    result["texts_per_call"] = (after["inputs"] - before["inputs"]) / max(calls, 1)
                    result["encoder_busy"] = (after["seconds"] - before["seconds"]) / result["seconds"]
                    result["min_cosine_to_in_process"] = min_cosine(result["rows"][result["ok"]],
                                                                    expected[result["ok"]])
                runs[name].append({k: v for k, v in result.items() if k not in ("rows", "ok")})
            if "llm2vec serve" in servers:
                # The control: in-process encode() called with the server's call size, so that what the
                # server adds is told apart from what smaller calls cost (more padding, smaller batches).
                size = max(1, round(runs["llm2vec serve"][-1]["texts_per_call"]))
                t0 = time.perf_counter()
                for i in range(0, len(texts), size):
                    model.encode(texts[i:i + size], batch_size=32, normalize_embeddings=True)
                runs.setdefault("in-process, server's call size", []).append(
                    {"seconds": time.perf_counter() - t0, "load": os.getloadavg()[0], "texts_per_call": size})
            print(f"round {round_ + 1}: " + ", ".join(
                f"{name} {r[-1]['seconds']:.1f} s (load {r[-1]['load']:.1f})" for name, r in runs.items()), flush=True)
    finally:
        for server in servers.values():
            server.stop()

    in_process = len(texts) / min(r["seconds"] for r in runs["in-process encode()"])
    report["in_process_texts_per_s"] = in_process
    report["runs"] = runs
    print(f"\nbest of {args.rounds} rounds")
    print(f"{'row':<22} {'time s':>8} {'texts/s':>9} {'ratio':>7} {'p50 s':>8} {'p99 s':>8} {'errors':>7}  statuses")
    print(f"{'in-process encode()':<22} {len(texts) / in_process:>8.1f} {in_process:>9.1f} {1.0:>7.2f}")
    if "in-process, server's call size" in runs:
        control = min(runs["in-process, server's call size"], key=lambda x: x["seconds"])
        report["in_process_server_call_size_texts_per_s"] = len(texts) / control["seconds"]
        print(f"{'in-process, calls of ' + str(control['texts_per_call']):<22} {control['seconds']:>8.1f} "
              f"{len(texts) / control['seconds']:>9.1f} {len(texts) / control['seconds'] / in_process:>7.2f}")
    best = {name: min(r, key=lambda x: x["seconds"]) for name, r in runs.items() if name in servers}
    for name, result in best.items():
        print_row(name, result, in_process)
        report[name] = result | {"ratio_to_in_process": result["texts_per_s"] / in_process}
    if "llm2vec serve" in best:
        serve = best["llm2vec serve"]
        errors = sum(r["errors"] for r in runs["llm2vec serve"])
        same_calls = report["in_process_server_call_size_texts_per_s"]
        print(f"{'':<22} {serve['encode_calls']} encode calls of {serve['texts_per_call']:.0f} texts on average, "
              f"encoder busy {serve['encoder_busy']:.0%} of the time; vs in-process calls of that size: "
              f"{serve['texts_per_s'] / same_calls:.2f}")
        print(f"{'':<22} min cosine to in-process: {min(r['min_cosine_to_in_process'] for r in runs['llm2vec serve']):.7f}; "
              f"ratio goal >= 0.85: {'met' if serve['texts_per_s'] / in_process >= 0.85 else 'MISSED'}; "
              f"errors in all rounds: {errors} (goal 0)")
    if "infinity-emb" in best and "llm2vec serve" in best:
        print(f"{'':<22} llm2vec serve / infinity-emb throughput: "
              f"{best['llm2vec serve']['texts_per_s'] / best['infinity-emb']['texts_per_s']:.2f} "
              "(infinity: causal attention, generic mean pooling: speed only)")
    for name, why in unavailable.items():
        report[name] = why
        print(f"{name:<22} {why}")

    # Overload: a small queue, many clients; refusals must be 429s, accepted requests still correct.
    port = free_port()
    over = Process(serve_argv(args, port, "--max-queue-tokens", str(args.overload_queue_tokens),
                              "--max-request-tokens", str(args.overload_queue_tokens)), port, tmp / "overload.log")
    try:
        over.wait_healthy(300)
        burst = asyncio.run(run_load(over.url, "bench", texts, args.overload_clients, args.texts_per_request,
                                     args.max_seconds, dim))
    finally:
        over.stop()
    print_row(f"overload ({args.overload_clients} clients)", burst, in_process)
    unexpected = {k: v for k, v in burst["statuses"].items() if k not in ("200", "429")}
    burst["min_cosine_to_in_process"] = min_cosine(burst["rows"][burst["ok"]], expected[burst["ok"]])
    print(f"{'':<22} queue of {args.overload_queue_tokens} tokens: refusals are 429 only: "
          f"{'yes' if not unexpected else f'NO {unexpected}'}; accepted min cosine "
          f"{burst['min_cosine_to_in_process']:.7f}", flush=True)
    report["overload"] = {k: v for k, v in burst.items() if k not in ("rows", "ok")}

    shutil.rmtree(tmp, ignore_errors=True)  # the merged model folder is as large as the model
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    assert SHARED.is_dir(), f"shared data not found at {SHARED}"
    sys.exit(main())
