"""Step 2: sign PNG / JPEG / WebP in memory (and via files), both digitalSourceTypes, plus an image-to-image
variant with a parent ingredient. Writes signed files to out/ and a summary to out/s02_sign.json.

Run: .venv/bin/python s02_sign.py
"""

from __future__ import annotations

import io
import json

import c2pa
from PIL import Image

from common import (
    DST_ALGO,
    DST_TRAINED,
    FAST_SETTINGS,
    OUT,
    PARAMETERS_TEXT,
    context,
    jpeg_bytes,
    make_key_material,
    make_signer,
    manifest_definition,
    noise_rgb,
    png_bytes,
    read_bytes,
    sign_bytes,
    status_codes,
    trust_settings,
    webp_bytes,
)


def png_chunks(data: bytes) -> list[str]:
    """List chunk types in order (to see where c2pa puts its caBX chunk)."""
    out, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        ctype = data[pos + 4:pos + 8].decode("latin-1")
        out.append(f"{ctype}({length})" if ctype not in ("IDAT",) else "IDAT")
        pos += 12 + length
    # collapse IDAT runs
    collapsed: list[str] = []
    n_idat = 0
    for c in out:
        if c == "IDAT":
            n_idat += 1
            if n_idat == 1:
                collapsed.append("IDAT")
            continue
        if n_idat:
            collapsed[-1] = f"IDAT[{n_idat}]"
            n_idat = 0
        collapsed.append(c)
    return collapsed


def summarize(store: dict) -> dict:
    active = store["manifests"][store["active_manifest"]]
    acts = [a for a in active["assertions"] if a["label"].startswith("c2pa.actions")]
    return {
        "claim_generator_info": active.get("claim_generator_info"),
        "signature_info": active.get("signature_info"),
        "actions_label": acts[0]["label"] if acts else None,
        "actions": acts[0]["data"]["actions"] if acts else None,
        "ingredients": [
            {k: i.get(k) for k in ("title", "relationship", "format", "label", "validation_results")}
            for i in active.get("ingredients", [])
        ],
        "codes": status_codes(store),
    }


def main() -> None:
    km = make_key_material("ec")
    signer = make_signer(km)  # a Signer is reusable across many Builder.sign() calls
    ctx = context(FAST_SETTINGS)  # thumbnails off (see s04_perf.py)
    read_ctx = context(trust_settings(km.ca_cert_pem))
    img = noise_rgb(1024)
    results: dict = {}

    assets = {
        "png": ("image/png", png_bytes(img)),
        "jpeg": ("image/jpeg", jpeg_bytes(img)),
        "webp": ("image/webp", webp_bytes(img)),
    }
    for fmt, (mime, data) in assets.items():
        for dst_name, dst in (("trainedAlgorithmicMedia", DST_TRAINED), ("algorithmicMedia", DST_ALGO)):
            signed = sign_bytes(data, mime, signer, manifest_definition(dst=dst, title=f"rupali.{fmt}"), ctx=ctx)
            (OUT / f"signed_{dst_name}.{fmt}").write_bytes(signed)
            s = summarize(read_bytes(signed, mime, read_ctx))
            s["size_in"], s["size_out"] = len(data), len(signed)
            results[f"{fmt}/{dst_name}"] = s
            print(fmt, dst_name, s["codes"]["validation_state"], s["codes"]["failure"], len(data), "->", len(signed))

    # PNG: the tEXt 'parameters' chunk survives signing; where does the caBX chunk go?
    signed_png = (OUT / "signed_trainedAlgorithmicMedia.png").read_bytes()
    with Image.open(io.BytesIO(signed_png)) as im:
        results["png_text_after_sign"] = im.text.get("parameters") == PARAMETERS_TEXT
    results["png_chunks_before"] = png_chunks(assets["png"][1])
    results["png_chunks_after"] = png_chunks(signed_png)
    print("png chunks before:", results["png_chunks_before"])
    print("png chunks after: ", results["png_chunks_after"])

    # File-based variant: Builder.sign_file(source_path, dest_path, signer) (mime from extension)
    src_path = OUT / "unsigned.png"
    src_path.write_bytes(assets["png"][1])
    builder = c2pa.Builder(manifest_definition(), context=ctx)
    manifest_bytes = builder.sign_file(src_path, OUT / "signed_file_api.png", signer)
    print("sign_file returned manifest bytes:", len(manifest_bytes))
    with c2pa.Reader(OUT / "signed_file_api.png", context=read_ctx) as r:  # path-based Reader
        results["file_api"] = {"state": r.get_validation_state(), "manifest_bytes": len(manifest_bytes)}
    print("file api:", results["file_api"])

    # Builder.set_intent variant: the SDK writes the c2pa.created action itself.
    builder = c2pa.Builder(
        {"claim_generator_info": [{"name": "Rupali", "version": "0.1.0"}]}, context=ctx
    )
    builder.set_intent(c2pa.C2paBuilderIntent.CREATE, c2pa.C2paDigitalSourceType.TRAINED_ALGORITHMIC_MEDIA)
    out = io.BytesIO()
    builder.sign(signer, "image/png", io.BytesIO(assets["png"][1]), out)
    s = summarize(read_bytes(out.getvalue(), "image/png", read_ctx))
    results["set_intent_create"] = s
    print("set_intent CREATE actions:", s["actions"], s["codes"]["validation_state"])

    # Image-to-image: parent ingredient (a) unsigned JPEG, (b) an already signed PNG
    parent_plain = jpeg_bytes(noise_rgb(512, seed=7))
    parent_signed = sign_bytes(png_bytes(noise_rgb(512, seed=8)), "image/png", signer, ctx=ctx)
    for label, (pdata, pmime) in (("unsigned_jpeg_parent", (parent_plain, "image/jpeg")),
                                  ("signed_png_parent", (parent_signed, "image/png"))):
        try:
            signed = sign_bytes(
                assets["png"][1], "image/png", signer, manifest_definition(with_parent=True), ctx=ctx,
                parent=(pdata, pmime),
            )
            s = summarize(read_bytes(signed, "image/png", read_ctx))
            s["size_out"] = len(signed)
            results[f"i2i/{label}"] = s
            (OUT / f"signed_i2i_{label}.png").write_bytes(signed)
            print("i2i", label, s["codes"]["validation_state"], s["codes"]["failure"], s["actions"], s["ingredients"])
        except Exception as e:  # noqa: BLE001
            results[f"i2i/{label}"] = f"{type(e).__name__}: {e}"
            print("i2i", label, "ERROR", e)

    # Manifest definition without any actions and no intent: what does the SDK add by default?
    out = io.BytesIO()
    try:
        c2pa.Builder({"claim_generator_info": [{"name": "Rupali", "version": "0.1.0"}]}, context=ctx).sign(
            signer, "image/png", io.BytesIO(assets["png"][1]), out
        )
        s = summarize(read_bytes(out.getvalue(), "image/png", read_ctx))
        results["no_actions_default"] = s["actions"]
    except c2pa.C2paError as e:
        results["no_actions_default"] = f"{type(e).__name__}: {e}"
    print("no actions given ->", results["no_actions_default"])

    (OUT / "s02_sign.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
