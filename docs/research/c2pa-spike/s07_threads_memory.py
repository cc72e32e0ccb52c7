"""Step 7: GIL release, sharing a Signer/Context across threads, and memory behaviour over many signs.

Run: .venv/bin/python s07_threads_memory.py
"""

from __future__ import annotations

import gc
import io
import json
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import c2pa

from common import (
    FAST_SETTINGS,
    OUT,
    context,
    make_key_material,
    make_signer,
    manifest_definition,
    noise_rgb,
    png_bytes,
    read_bytes,
    trust_settings,
)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return -1.0


def sign_once(data: bytes, signer: c2pa.Signer, ctx: c2pa.Context, md: dict) -> int:
    out = io.BytesIO()
    c2pa.Builder(md, context=ctx).sign(signer, "image/png", io.BytesIO(data), out)
    return len(out.getvalue())


def main() -> None:
    km = make_key_material("ec")
    signer = make_signer(km)
    md = manifest_definition()
    data = png_bytes(noise_rgb(1024))
    results: dict = {}

    # --- 1. Does a Python thread keep running while another thread is inside the native sign call?
    # Use the default (thumbnail) config so the native part is long (~85 ms, mostly inside Rust).
    heavy = context(None)
    stop = threading.Event()
    counter = [0]

    def spinner() -> None:
        while not stop.is_set():
            counter[0] += 1

    # baseline spinner rate alone
    t = threading.Thread(target=spinner)
    t.start()
    time.sleep(0.5)
    stop.set()
    t.join()
    alone = counter[0] / 0.5
    counter[0] = 0
    stop.clear()
    t = threading.Thread(target=spinner)
    t.start()
    t0 = time.perf_counter()
    for _ in range(6):
        sign_once(data, signer, heavy, md)
    dt = time.perf_counter() - t0
    stop.set()
    t.join()
    during = counter[0] / dt
    results["spinner_iterations_per_s_alone"] = round(alone)
    results["spinner_iterations_per_s_during_signing"] = round(during)
    print(f"spinner alone {alone:,.0f}/s, during signing {during:,.0f}/s")

    # --- 2. Parallel speed-up with 2 threads (2 cores here), shared Signer + shared Context
    for label, ctx, n in (("defaults (thumbnail on)", heavy, 12), ("thumbnail off", context(FAST_SETTINGS), 60)):
        reps = []
        for _ in range(3):  # repeated: timings on this 2-core box are noisy
            t0 = time.perf_counter()
            for _ in range(n):
                sign_once(data, signer, ctx, md)
            seq = time.perf_counter() - t0
            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=2) as ex:
                sizes = list(ex.map(lambda _, c=ctx: sign_once(data, signer, c, md), range(n)))
            par = time.perf_counter() - t0
            reps.append({"sequential_s": round(seq, 3), "two_threads_s": round(par, 3),
                         "speedup": round(seq / par, 2), "all_same_size": len(set(sizes)) == 1})
        results[f"parallel_{label}"] = {"n": n, "reps": reps}
        print(label, n, reps)

    # --- 3. Shared Signer across 4 threads, 40 signs, then validate all outputs
    fast = context(FAST_SETTINGS)
    rctx = context(trust_settings(km.ca_cert_pem))

    def sign_and_check(i: int) -> str:
        out = io.BytesIO()
        c2pa.Builder(md, context=fast).sign(signer, "image/png", io.BytesIO(data), out)
        return read_bytes(out.getvalue(), "image/png", rctx)["validation_state"]

    with ThreadPoolExecutor(max_workers=4) as ex:
        states = list(ex.map(sign_and_check, range(40)))
    results["shared_signer_4_threads_40_signs_states"] = sorted(set(states))
    print("shared signer, 4 threads:", sorted(set(states)), len(states))

    # --- 4. One Builder used from two threads at once (expected to be refused)
    builder = c2pa.Builder(md, context=heavy)
    errors = []

    def use_builder() -> None:
        try:
            builder.sign(signer, "image/png", io.BytesIO(data), io.BytesIO())
        except Exception as e:  # noqa: BLE001
            errors.append(f"{type(e).__name__}: {e}")

    ths = [threading.Thread(target=use_builder) for _ in range(2)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    results["same_builder_two_threads_errors"] = errors
    print("same builder, two threads:", errors)

    # Re-using a Builder after sign()
    b = c2pa.Builder(md, context=fast)
    b.sign(signer, "image/png", io.BytesIO(data), io.BytesIO())
    try:
        b.sign(signer, "image/png", io.BytesIO(data), io.BytesIO())
    except Exception as e:  # noqa: BLE001
        results["builder_reuse_error"] = f"{type(e).__name__}: {e}"
    print("builder reuse:", results.get("builder_reuse_error"))

    # --- 5. Memory: RSS over 300 fast signs of a 3 MB PNG (+ reads)
    gc.collect()
    rss0 = rss_mb()
    marks = {}
    for i in range(1, 301):
        sign_once(data, signer, fast, md)
        if i in (1, 50, 100, 200, 300):
            gc.collect()
            marks[i] = round(rss_mb(), 1)
    results["rss_mb_start"] = round(rss0, 1)
    results["rss_mb_after_n_fast_signs"] = marks
    marks2 = {}
    for i in range(1, 101):
        sign_once(data, signer, heavy, md)
        if i in (1, 50, 100):
            gc.collect()
            marks2[i] = round(rss_mb(), 1)
    results["rss_mb_after_n_default_signs"] = marks2
    results["ru_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("rss:", rss0, marks, marks2, "peak", results["ru_maxrss_mb"])
    (OUT / "s07_threads_memory.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
