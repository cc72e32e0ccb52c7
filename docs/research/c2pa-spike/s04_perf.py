"""Step 4: signing time and size growth for a 1024x1024 PNG, defaults vs. tuned settings.

Median over N runs (default 15) of: Builder(...) + builder.sign(signer, mime, BytesIO, BytesIO).
Signer and Context are created once and reused (their creation is timed separately).

Run: .venv/bin/python s04_perf.py [N]
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import time

import c2pa

from common import (
    OUT,
    context,
    gradient_rgb,
    jpeg_bytes,
    make_key_material,
    make_signer,
    manifest_definition,
    noise_rgb,
    png_bytes,
    read_bytes,
    webp_bytes,
)

N = int(sys.argv[1]) if len(sys.argv) > 1 else 15

CONFIGS: dict[str, dict | None] = {
    "library defaults (Context())": None,
    "thumbnail.enabled=false": {"builder": {"thumbnail": {"enabled": False}}},
    "thumbnail.enabled=false + verify_after_sign=false": {
        "builder": {"thumbnail": {"enabled": False}},
        "verify": {"verify_after_sign": False},
    },
    "thumbnail on, long_edge=256": {"builder": {"thumbnail": {"long_edge": 256}}},
    "thumbnail on, long_edge=256, quality=low": {"builder": {"thumbnail": {"long_edge": 256, "quality": "low"}}},
    "verify_after_sign=false only": {"verify": {"verify_after_sign": False}},
}


def time_sign(data: bytes, mime: str, signer: c2pa.Signer, ctx: c2pa.Context, md: dict) -> tuple[list[float], int]:
    times, size = [], 0
    for i in range(N + 1):
        t0 = time.perf_counter()
        builder = c2pa.Builder(md, context=ctx)
        out = io.BytesIO()
        builder.sign(signer, mime, io.BytesIO(data), out)
        dt = (time.perf_counter() - t0) * 1000
        if i:  # drop the first (warm-up) run
            times.append(dt)
        size = len(out.getvalue())
    return times, size


def fmt_row(name: str, times: list[float], size_in: int, size_out: int) -> dict:
    times = sorted(times)
    return {
        "config": name,
        "median_ms": round(statistics.median(times), 2),
        "min_ms": round(times[0], 2),
        "max_ms": round(times[-1], 2),
        "size_in": size_in,
        "size_out": size_out,
        "growth_bytes": size_out - size_in,
        "growth_pct": round(100 * (size_out - size_in) / size_in, 3),
    }


def main() -> None:
    md = manifest_definition()
    km = make_key_material("ec")
    t0 = time.perf_counter()
    signer = make_signer(km)
    signer_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    for _ in range(20):
        context({"builder": {"thumbnail": {"enabled": False}}})
    ctx_ms = (time.perf_counter() - t0) * 1000 / 20

    images = {
        "png 1024 noise": ("image/png", png_bytes(noise_rgb(1024))),
        "png 1024 gradient+noise": ("image/png", png_bytes(gradient_rgb(1024))),
    }
    rows = []
    for img_name, (mime, data) in images.items():
        for cfg_name, settings in CONFIGS.items():
            times, size_out = time_sign(data, mime, signer, context(settings), md)
            row = fmt_row(cfg_name, times, len(data), size_out)
            row["image"] = img_name
            rows.append(row)
            print(f"{img_name:26s} {cfg_name:52s} median {row['median_ms']:7.2f} ms  "
                  f"+{row['growth_bytes']:>8d} B ({row['growth_pct']:.2f} %)")

    # Fast config on other formats and with PS256
    fast = context({"builder": {"thumbnail": {"enabled": False}}})
    img = noise_rgb(1024)
    for label, (mime, data) in {"jpeg 1024 noise q92": ("image/jpeg", jpeg_bytes(img)),
                                "webp 1024 noise q90": ("image/webp", webp_bytes(img))}.items():
        for cfg_name, ctx in (("library defaults (Context())", context(None)), ("thumbnail.enabled=false", fast)):
            times, size_out = time_sign(data, mime, signer, ctx, md)
            row = fmt_row(cfg_name, times, len(data), size_out)
            row["image"] = label
            rows.append(row)
            print(f"{label:26s} {cfg_name:52s} median {row['median_ms']:7.2f} ms  +{row['growth_bytes']:>8d} B "
                  f"({row['growth_pct']:.2f} %)")
    ps_signer = make_signer(make_key_material("rsa"))
    data = images["png 1024 noise"][1]
    times, size_out = time_sign(data, "image/png", ps_signer, fast, md)
    row = fmt_row("thumbnail.enabled=false, PS256 (RSA-2048)", times, len(data), size_out)
    row["image"] = "png 1024 noise"
    rows.append(row)
    print(f"{'png 1024 noise':26s} {row['config']:52s} median {row['median_ms']:7.2f} ms  +{row['growth_bytes']} B")

    # Read/verify timing (fast-signed file, default vs trusted ctx)
    signed = io.BytesIO()
    c2pa.Builder(md, context=fast).sign(signer, "image/png", io.BytesIO(data), signed)
    sb = signed.getvalue()
    read_times = []
    for _ in range(N):
        t0 = time.perf_counter()
        read_bytes(sb, "image/png")
        read_times.append((time.perf_counter() - t0) * 1000)
    # File-based signing (sign_file) with the fast config, for comparison with BytesIO
    src = OUT / "perf_src.png"
    src.write_bytes(data)
    file_times = []
    for i in range(N + 1):
        t0 = time.perf_counter()
        c2pa.Builder(md, context=fast).sign_file(src, OUT / "perf_dst.png", signer)
        if i:
            file_times.append((time.perf_counter() - t0) * 1000)

    # What is the default thumbnail? Pull it out of a default-signed asset with Reader.resource_to_stream.
    thumbs = {}
    for label, (mime, raw) in {"png 1024 noise": ("image/png", data),
                               "png 1024 gradient+noise": images["png 1024 gradient+noise"],
                               "webp 1024 noise": ("image/webp", webp_bytes(img))}.items():
        out = io.BytesIO()
        c2pa.Builder(md, context=context(None)).sign(signer, mime, io.BytesIO(raw), out)
        with c2pa.Reader(mime, io.BytesIO(out.getvalue())) as r:
            thumb = r.get_active_manifest()["thumbnail"]
            tb = io.BytesIO()
            n = r.resource_to_stream(thumb["identifier"], tb)
        thumbs[label] = {"format": thumb["format"], "bytes": n}
    print("default thumbnails:", thumbs)

    extra = {
        "sign_file_fast_png_noise_median_ms": round(statistics.median(file_times), 2),
        "default_thumbnails": thumbs,
        "signer_from_info_ms": round(signer_ms, 2),
        "context_from_dict_ms": round(ctx_ms, 3),
        "read_and_validate_png_median_ms": round(statistics.median(read_times), 2),
        "signer_reserve_size": signer.reserve_size(),
        "runs": N,
    }
    print(extra)
    (OUT / "s04_perf.json").write_text(json.dumps({"rows": rows, "extra": extra}, indent=2))


if __name__ == "__main__":
    main()
