"""Step 3: read back (Reader API), then tamper with pixels / the tEXt chunk and record validation codes.

Run: .venv/bin/python s03_read_tamper.py
"""

from __future__ import annotations

import io
import json
import zlib

import c2pa
from PIL import Image

from common import (
    FAST_SETTINGS,
    OUT,
    context,
    jpeg_bytes,
    make_key_material,
    make_signer,
    noise_rgb,
    png_bytes,
    read_bytes,
    sign_bytes,
    status_codes,
    trust_settings,
)

# ------------------------------------------------------------------ PNG chunk helpers


def iter_chunks(data: bytes):
    pos = 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        ctype = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        yield ctype, body, data[pos:pos + 12 + length]
        pos += 12 + length


def chunk(ctype: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + ctype + body + zlib.crc32(ctype + body).to_bytes(4, "big")


def replace_idat(signed: bytes, new_png: bytes) -> bytes:
    """Keep every non-IDAT chunk of `signed` (incl. caBX and tEXt), swap in the IDAT stream of `new_png`."""
    new_idat = b"".join(raw for t, _, raw in iter_chunks(new_png) if t == b"IDAT")
    out, done = [signed[:8]], False
    for t, _, raw in iter_chunks(signed):
        if t == b"IDAT":
            if not done:
                out.append(new_idat)
                done = True
            continue
        out.append(raw)
    return b"".join(out)


def tamper_pixel(signed: bytes) -> bytes:
    with Image.open(io.BytesIO(signed)) as im:
        im = im.convert("RGB")
        r, g, b = im.getpixel((10, 10))
        im.putpixel((10, 10), ((r + 1) % 256, g, b))
        buf = io.BytesIO()
        im.save(buf, format="PNG")  # lossless re-encode
    return replace_idat(signed, buf.getvalue())


def tamper_text(signed: bytes, fix_crc: bool = True) -> bytes:
    """Change one byte of the tEXt 'parameters' value (same length)."""
    out = [signed[:8]]
    for t, body, raw in iter_chunks(signed):
        if t == b"tEXt" and body.startswith(b"parameters\0"):
            i = body.index(b"Seed: ") + 6
            body2 = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]
            out.append(chunk(t, body2) if fix_crc else raw[:8] + body2 + raw[-4:])
        else:
            out.append(raw)
    return b"".join(out)


def add_text_chunk_after_sign(signed: bytes) -> bytes:
    """Insert a new tEXt chunk before IEND after signing."""
    idx = signed.rindex(b"IEND") - 4
    return signed[:idx] + chunk(b"tEXt", b"comment\0added after signing") + signed[idx:]


def main() -> None:
    km = make_key_material("ec")
    signer = make_signer(km)
    trusted_ctx = context(trust_settings(km.ca_cert_pem))
    results: dict = {}

    png = png_bytes(noise_rgb(1024))
    signed = sign_bytes(png, "image/png", signer, ctx=context(FAST_SETTINGS))

    # ---- Reader API walk-through
    with c2pa.Reader("image/png", io.BytesIO(signed), context=trusted_ctx) as reader:
        active = reader.get_active_manifest()
        actions = next(a for a in active["assertions"] if a["label"].startswith("c2pa.actions"))["data"]["actions"]
        results["reader"] = {
            "validation_state": reader.get_validation_state(),
            "validation_results_keys": list((reader.get_validation_results() or {}).keys()),
            "signature_info": active.get("signature_info"),
            "claim_generator_info": active.get("claim_generator_info"),
            "digitalSourceType": [a.get("digitalSourceType") for a in actions],
            "softwareAgent": [a.get("softwareAgent") for a in actions],
            "is_embedded": reader.is_embedded(),
            "remote_url": reader.get_remote_url(),
        }
        detailed = json.loads(reader.detailed_json())
        results["detailed_json_top_keys"] = list(detailed.keys())
        act_m = detailed["manifests"][detailed["active_manifest"]]
        results["detailed_signature"] = act_m.get("signature")
        results["detailed_claim_keys"] = list(act_m.get("claim", {}).keys())
    print(json.dumps(results["reader"], indent=1))
    print("detailed signature:", results["detailed_signature"])

    # Reader auto-detecting format: Reader(stream)
    with c2pa.Reader(io.BytesIO(signed), context=trusted_ctx) as reader:
        results["reader_autodetect_state"] = reader.get_validation_state()

    # Reader.try_create on an unsigned file returns None
    results["try_create_unsigned"] = repr(c2pa.Reader.try_create("image/png", io.BytesIO(png)))

    # ---- untrusted vs trusted
    results["untrusted_default_ctx"] = status_codes(read_bytes(signed, "image/png"))
    results["trusted_user_anchors"] = status_codes(read_bytes(signed, "image/png", trusted_ctx))

    # ---- tampering
    cases = {
        "pixel (10,10) R+1, IDAT re-encoded losslessly, caBX+tEXt kept": tamper_pixel(signed),
        "tEXt parameters: one byte flipped, CRC fixed": tamper_text(signed, fix_crc=True),
        "tEXt parameters: one byte flipped, CRC NOT fixed": tamper_text(signed, fix_crc=False),
        "new tEXt chunk inserted before IEND after signing": add_text_chunk_after_sign(signed),
    }
    # JPEG: flip one byte in the entropy-coded data near the end
    jpg = sign_bytes(jpeg_bytes(noise_rgb(256)), "image/jpeg", signer, ctx=context(FAST_SETTINGS))
    jb = bytearray(jpg)
    jb[-100] ^= 0x01
    results["tamper"] = {}
    for name, data in cases.items():
        for lbl, ctx in (("default", None), ("trusted", trusted_ctx)):
            try:
                st = status_codes(read_bytes(data, "image/png", ctx))
                results["tamper"][f"{name} [{lbl}]"] = {"state": st["validation_state"], "failure": st["failure"]}
            except Exception as e:  # noqa: BLE001
                results["tamper"][f"{name} [{lbl}]"] = f"{type(e).__name__}: {e}"
            print(f"{name} [{lbl}] ->", results["tamper"][f"{name} [{lbl}]"])
    st = status_codes(read_bytes(bytes(jb), "image/jpeg", trusted_ctx))
    results["tamper"]["jpeg: one byte of scan data flipped [trusted]"] = {
        "state": st["validation_state"], "failure": st["failure"]}
    print("jpeg byte flip ->", results["tamper"]["jpeg: one byte of scan data flipped [trusted]"])

    # Does Pillow still open the tampered files / still read 'parameters'?
    with Image.open(io.BytesIO(cases["tEXt parameters: one byte flipped, CRC fixed"])) as im:
        results["pillow_text_after_tamper"] = im.text.get("parameters")

    (OUT / "s03_read_tamper.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
