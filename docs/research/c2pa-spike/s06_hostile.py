"""Step 6: hostile inputs for Reader (and a few for Builder.sign). Records exception type + message verbatim.

Run: .venv/bin/python s06_hostile.py
"""

from __future__ import annotations

import io
import json
import os

import c2pa

from common import (
    FAST_SETTINGS,
    OUT,
    context,
    jpeg_bytes,
    make_key_material,
    make_signer,
    manifest_definition,
    noise_rgb,
    png_bytes,
    sign_bytes,
    status_codes,
    trust_settings,
)
from s03_read_tamper import chunk, iter_chunks


def replace_cabx(png: bytes, new_body: bytes | None) -> bytes:
    """Replace (or with None: drop) the caBX chunk body of a signed PNG."""
    out = [png[:8]]
    for t, _, raw in iter_chunks(png):
        if t == b"caBX":
            if new_body is not None:
                out.append(chunk(b"caBX", new_body))
        else:
            out.append(raw)
    return b"".join(out)


def insert_cabx(png: bytes, body: bytes) -> bytes:
    """Insert a caBX chunk right after IHDR (into an unsigned PNG)."""
    ihdr_end = 8 + 12 + 13
    return png[:ihdr_end] + chunk(b"caBX", body) + png[ihdr_end:]


def cabx_body(png: bytes) -> bytes:
    return next(b for t, b, _ in iter_chunks(png) if t == b"caBX")


def try_read(data: bytes, fmt: str | None, ctx) -> dict:
    try:
        stream = io.BytesIO(data)
        reader = c2pa.Reader(fmt, stream, context=ctx) if fmt else c2pa.Reader(stream, context=ctx)
        with reader:
            st = status_codes(json.loads(reader.json()))
        return {"ok": True, "state": st["validation_state"], "failure": st["failure"]}
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def main() -> None:
    km = make_key_material("ec")
    signer = make_signer(km)
    ctx = context(FAST_SETTINGS)
    rctx = context(trust_settings(km.ca_cert_pem))
    png = png_bytes(noise_rgb(256))
    signed = sign_bytes(png, "image/png", signer, ctx=ctx)
    other_signed = sign_bytes(png_bytes(noise_rgb(256, seed=99)), "image/png", signer, ctx=ctx)
    body = cabx_body(signed)
    flipped = bytearray(body)
    flipped[len(body) - 40] ^= 0xFF  # inside the COSE signature bytes near the end of the JUMBF

    cases: dict[str, tuple[bytes, str | None]] = {
        "non-image text bytes as image/png": (b"hello, this is not an image\n" * 10, "image/png"),
        "non-image text bytes, autodetect": (b"hello, this is not an image\n" * 10, None),
        "empty bytes as image/png": (b"", "image/png"),
        "unsigned PNG": (png, "image/png"),
        "unsigned PNG, Reader.try_create -> None?": (png, "try_create"),
        "signed PNG truncated to 50%": (signed[: len(signed) // 2], "image/png"),
        "signed PNG truncated inside caBX": (signed[:8 + 25 + 200], "image/png"),
        "signed PNG missing IEND (last 12 bytes cut)": (signed[:-12], "image/png"),
        "unsigned PNG + caBX of random garbage (valid CRC)": (insert_cabx(png, os.urandom(2000)), "image/png"),
        "unsigned PNG + caBX starting 'jumb' then garbage": (
            insert_cabx(png, (2000).to_bytes(4, "big") + b"jumb" + os.urandom(1992)), "image/png"),
        "signed PNG with caBX body bit-flipped in COSE signature": (replace_cabx(signed, bytes(flipped)), "image/png"),
        "manifest of image A transplanted into image B": (insert_cabx(png_bytes(noise_rgb(256, seed=99)), body),
                                                          "image/png"),
        "signed PNG declared as image/jpeg": (signed, "image/jpeg"),
        "signed JPEG declared as image/png": (sign_bytes(jpeg_bytes(noise_rgb(256)), "image/jpeg", signer, ctx=ctx),
                                              "image/png"),
        "unsupported mime 'application/x-foo'": (signed, "application/x-foo"),
    }
    results: dict = {"read": {}, "sign": {}}
    for name, (data, fmt) in cases.items():
        if fmt == "try_create":
            r = c2pa.Reader.try_create("image/png", io.BytesIO(data), context=rctx)
            res = {"ok": True, "returned": repr(r)}
        else:
            res = try_read(data, fmt, rctx)
        results["read"][name] = res
        print(f"READ {name}: {res}")
    _ = other_signed

    sign_cases = {
        "sign non-image bytes as image/png": (b"not an image at all" * 100, "image/png"),
        "sign truncated PNG (50%)": (png[: len(png) // 2], "image/png"),
        "sign empty bytes": (b"", "image/png"),
        "sign PNG declared as image/jpeg": (png, "image/jpeg"),
        "sign with unsupported mime 'image/bmp'": (png, "image/bmp"),
    }
    for name, (data, fmt) in sign_cases.items():
        try:
            out = io.BytesIO()
            c2pa.Builder(manifest_definition(), context=ctx).sign(signer, fmt, io.BytesIO(data), out)
            res = {"ok": True, "size_out": len(out.getvalue())}
        except Exception as e:  # noqa: BLE001
            res = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        results["sign"][name] = res
        print(f"SIGN {name}: {res}")

    # Malformed manifest definitions
    for name, md in {
        "manifest JSON not an object": "[1,2,3]",
        "unknown digitalSourceType URI": manifest_definition(dst="http://example.com/notAType"),
        "claim_generator_info missing": {"assertions": manifest_definition()["assertions"]},
    }.items():
        try:
            out = io.BytesIO()
            c2pa.Builder(md, context=ctx).sign(signer, "image/png", io.BytesIO(png), out)
            res = {"ok": True, "size_out": len(out.getvalue())}
        except Exception as e:  # noqa: BLE001
            res = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        results["sign"][name] = res
        print(f"SIGN {name}: {res}")
    (OUT / "s06_hostile.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
