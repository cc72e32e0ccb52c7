"""Step 5: write IPTC Iptc4xmpExt:DigitalSourceType as XMP with Pillow (PNG iTXt 'XML:com.adobe.xmp', JPEG APP1,
WebP 'XMP ' chunk) BEFORE signing, sign, and check that (a) the C2PA manifest validates and (b) the XMP survives.
Also: writing the XMP AFTER signing breaks the hard binding.

Run: .venv/bin/python s05_xmp.py
"""

from __future__ import annotations

import io
import json

from PIL import Image

from common import (
    DST_TRAINED,
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
    webp_bytes,
)


def xmp_packet(dst: str = DST_TRAINED, tool: str = "Rupali 0.1.0") -> bytes:
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    Iptc4xmpExt:DigitalSourceType="{dst}"
    xmp:CreatorTool="{tool}"/>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()


def xmp_from(data: bytes) -> bytes | None:
    """Raw XMP bytes as Pillow exposes them (im.info['xmp'] for JPEG/WebP/PNG)."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        x = im.info.get("xmp")
        if x is None and hasattr(im, "text"):
            x = im.text.get("XML:com.adobe.xmp")
        if isinstance(x, str):
            x = x.encode()
        return x


def container_check(mime: str, data: bytes) -> str:
    """Where the XMP physically sits in the container (byte-level check, independent of Pillow)."""
    if mime == "image/png":
        from s03_read_tamper import iter_chunks

        kinds = [(t.decode(), b[:17]) for t, b, _ in iter_chunks(data) if t in (b"iTXt", b"caBX")]
        return f"chunks: {kinds}"
    if mime == "image/jpeg":
        i = data.find(b"\xff\xe1")
        while i != -1 and not data[i + 4:i + 33].startswith(b"http://ns.adobe.com/xap/1.0/"):
            i = data.find(b"\xff\xe1", i + 2)
        has_app11 = b"\xff\xeb" in data
        return f"APP1 'http://ns.adobe.com/xap/1.0/' at offset {i}; APP11 (C2PA JUMBF) present: {has_app11}"
    if mime == "image/webp":
        pos, kinds = 12, []
        while pos + 8 <= len(data):
            fourcc = data[pos:pos + 4].decode("latin-1")
            size = int.from_bytes(data[pos + 4:pos + 8], "little")
            kinds.append(f"{fourcc}({size})")
            pos += 8 + size + (size & 1)
        return f"RIFF chunks: {kinds}"
    return "?"


def main() -> None:
    km = make_key_material("ec")
    signer = make_signer(km)
    ctx = context(FAST_SETTINGS)
    rctx = context(trust_settings(km.ca_cert_pem))
    img = noise_rgb(512)
    xmp = xmp_packet()
    results = {}
    builders = {
        "png (iTXt XML:com.adobe.xmp)": ("image/png", lambda: png_bytes(img, xmp=xmp)),
        "jpeg (APP1 XMP, Pillow xmp=)": ("image/jpeg", lambda: jpeg_bytes(img, xmp=xmp)),
        "webp (XMP chunk, Pillow xmp=)": ("image/webp", lambda: webp_bytes(img, xmp=xmp)),
    }
    for name, (mime, make) in builders.items():
        unsigned = make()
        before = xmp_from(unsigned)
        signed = sign_bytes(unsigned, mime, signer, ctx=ctx)
        after = xmp_from(signed)
        st = status_codes(read_bytes(signed, mime, rctx))
        results[name] = {
            "xmp_written": before is not None and b"Iptc4xmpExt:DigitalSourceType" in before,
            "xmp_survives_signing_unchanged": after == before,
            "xmp_after_contains_dst": after is not None and DST_TRAINED.encode() in after,
            "c2pa_state": st["validation_state"],
            "c2pa_failure": st["failure"],
            "container_after_sign": container_check(mime, signed),
        }
        if after != before and after is not None:
            results[name]["xmp_after_sign"] = after.decode("utf-8", "replace")[:600]
        print(name, results[name])

    # Writing XMP AFTER signing (Pillow re-save would drop caBX; so splice an iTXt chunk in place) -> hash mismatch
    from s03_read_tamper import chunk

    signed = sign_bytes(png_bytes(img), "image/png", signer, ctx=ctx)
    idx = signed.rindex(b"IEND") - 4
    itxt = chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp)
    late = signed[:idx] + itxt + signed[idx:]
    st = status_codes(read_bytes(late, "image/png", rctx))
    results["png: XMP iTXt added AFTER signing"] = {"c2pa_state": st["validation_state"], "c2pa_failure": st["failure"]}
    print("png XMP after signing:", results["png: XMP iTXt added AFTER signing"])

    # Re-saving a signed PNG through Pillow: is the manifest kept?
    with Image.open(io.BytesIO(signed)) as im:
        buf = io.BytesIO()
        im.save(buf, format="PNG", pnginfo=None)
    try:
        st = status_codes(read_bytes(buf.getvalue(), "image/png", rctx))
        results["png: signed file re-saved by Pillow"] = st
    except Exception as e:  # noqa: BLE001
        results["png: signed file re-saved by Pillow"] = f"{type(e).__name__}: {e}"
    print("pillow re-save:", results["png: signed file re-saved by Pillow"])
    (OUT / "s05_xmp.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
