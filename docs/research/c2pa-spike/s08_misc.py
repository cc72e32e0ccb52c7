"""Step 8: odds and ends -- TSA URL behaviour, Signer.from_callback with `cryptography`, a Context that carries the
signer, Settings.set() vs from_dict, and whether the deprecated load_settings() still affects Builder.

Run: .venv/bin/python s08_misc.py
"""

from __future__ import annotations

import io
import json
import time
import warnings

import c2pa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

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
    status_codes,
    trust_settings,
)


def has_thumbnail(signed: bytes) -> bool:
    with c2pa.Reader("image/png", io.BytesIO(signed)) as r:
        return "thumbnail" in (r.get_active_manifest() or {})


def main() -> None:
    km = make_key_material("ec")
    md = manifest_definition()
    png = png_bytes(noise_rgb(256))
    fast = context(FAST_SETTINGS)
    rctx = context(trust_settings(km.ca_cert_pem))
    results: dict = {}

    # 1. TSA URL: None omits the timestamp. An unreachable TSA (closed loopback port) -> error string.
    for label, url in (("ta_url=None", None), ("ta_url=http://127.0.0.1:9/ (closed port)", "http://127.0.0.1:9/")):
        t0 = time.perf_counter()
        try:
            signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(km.alg, km.chain_pem, km.leaf_key_pem, url))
            out = io.BytesIO()
            c2pa.Builder(md, context=fast).sign(signer, "image/png", io.BytesIO(png), out)
            st = status_codes(read_bytes(out.getvalue(), "image/png", rctx))
            res = {"ok": True, "state": st["validation_state"], "informational": st["informational"]}
        except Exception as e:  # noqa: BLE001
            res = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        res["ms"] = round((time.perf_counter() - t0) * 1000, 1)
        results[label] = res
        print(label, res)

    # 2. Signer.from_callback: the private key stays in Python (`cryptography`); c2pa asks us to sign bytes.
    key = serialization.load_pem_private_key(km.leaf_key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)

    def es256_der(data: bytes) -> bytes:
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    def es256_raw(data: bytes) -> bytes:
        r, s = decode_dss_signature(es256_der(data))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    for label, cb in (("callback returns DER ECDSA", es256_der), ("callback returns raw r||s (P1363)", es256_raw)):
        try:
            signer = c2pa.Signer.from_callback(cb, c2pa.C2paSigningAlg.ES256, km.chain_pem.decode(), None)
            out = io.BytesIO()
            c2pa.Builder(md, context=fast).sign(signer, "image/png", io.BytesIO(png), out)
            st = status_codes(read_bytes(out.getvalue(), "image/png", rctx))
            res = {"ok": True, "state": st["validation_state"], "failure": st["failure"]}
        except Exception as e:  # noqa: BLE001
            res = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        results[label] = res
        print(label, res)

    # 3. Context that carries the signer: builder.sign(format, source, dest) without a signer argument.
    settings = c2pa.Settings.from_dict(FAST_SETTINGS)
    ctx_with_signer = c2pa.Context(settings=settings, signer=make_signer(km))  # signer is consumed here
    outs = []
    for _ in range(3):  # the context (and its signer) is reusable across builders
        out = io.BytesIO()
        c2pa.Builder(md, context=ctx_with_signer).sign("image/png", io.BytesIO(png), out)
        outs.append(read_bytes(out.getvalue(), "image/png", rctx)["validation_state"])
    results["context_with_signer_3_signs"] = outs
    print("context with signer:", outs)

    # 4. Settings.set() path syntax (value is a JSON string)
    s = c2pa.Settings()
    s.set("builder.thumbnail.enabled", "false")
    out = io.BytesIO()
    c2pa.Builder(md, context=c2pa.Context(settings=s)).sign(make_signer(km), "image/png", io.BytesIO(png), out)
    results["settings_set_thumbnail_false_has_thumbnail"] = has_thumbnail(out.getvalue())
    try:
        c2pa.Settings().set("builder.thumbnail.enabeld", "false")
        results["settings_set_typo"] = "accepted silently"
    except Exception as e:  # noqa: BLE001
        results["settings_set_typo"] = f"{type(e).__name__}: {e}"
    try:
        c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": "nope"}}})
        results["settings_bad_type"] = "accepted silently"
    except Exception as e:  # noqa: BLE001
        results["settings_bad_type"] = f"{type(e).__name__}: {e}"
    try:
        c2pa.Context.from_dict({"buildr": {"thumbnail": {"enabled": False}}})
        results["settings_unknown_top_key"] = "accepted silently"
    except Exception as e:  # noqa: BLE001
        results["settings_unknown_top_key"] = f"{type(e).__name__}: {e}"
    print("Settings.set ->thumbnail present:", results["settings_set_thumbnail_false_has_thumbnail"])
    print("typo path:", results["settings_set_typo"], "| bad type:", results["settings_bad_type"],
          "| unknown top key:", results["settings_unknown_top_key"])

    # 5. Deprecated load_settings(): does a Builder without a context still honour it?
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        c2pa.load_settings({"builder": {"thumbnail": {"enabled": False}}})
        results["load_settings_warning"] = [str(x.message) for x in w]
    out = io.BytesIO()
    c2pa.Builder(md).sign(make_signer(km), "image/png", io.BytesIO(png), out)
    results["builder_without_context_after_load_settings_has_thumbnail"] = has_thumbnail(out.getvalue())
    print("load_settings warning:", results["load_settings_warning"])
    print("Builder() w/o context after load_settings(thumbnail off) has thumbnail:",
          results["builder_without_context_after_load_settings_has_thumbnail"])

    # 6. created vs gathered assertions: user-supplied c2pa.actions land in "gathered_assertions" unless
    #    builder.created_assertion_labels lists them.
    created_cfg = {"builder": {"thumbnail": {"enabled": False}, "created_assertion_labels": ["c2pa.actions"]}}
    for label, settings in (("default", FAST_SETTINGS), ("created_assertion_labels=[c2pa.actions]", created_cfg)):
        out = io.BytesIO()
        c2pa.Builder(md, context=context(settings)).sign(make_signer(km), "image/png", io.BytesIO(png), out)
        with c2pa.Reader("image/png", io.BytesIO(out.getvalue()), context=rctx) as r:
            claim = json.loads(r.crjson())["manifests"][0]["claim.v2"]
            results[f"assertion_lists [{label}]"] = {
                "created": [a["url"] for a in claim["created_assertions"]],
                "gathered": [a["url"] for a in claim["gathered_assertions"]],
                "state": r.get_validation_state(),
            }
        print(label, results[f"assertion_lists [{label}]"])

    # 7. No TSA: what happens to already-signed files once the leaf certificate expires?
    #    Leaf valid for ~4 s (cert times have 1 s resolution): sign now, read now, sleep past notAfter, read again.
    import datetime as dt

    from common import make_ca, make_leaf, pem_cert, pem_key

    ca_key, ca_cert = make_ca("ec")
    now = dt.datetime.now(dt.UTC)
    leaf_key, leaf_cert = make_leaf(ca_key, ca_cert, "ec", not_before_days=-1, days_valid=0)
    # make_leaf works in days; rebuild notAfter = now + 4 s with the same recipe
    from cryptography import x509 as _x509

    builder_x = _x509.CertificateBuilder(
        issuer_name=leaf_cert.issuer, subject_name=leaf_cert.subject, public_key=leaf_key.public_key(),
        serial_number=_x509.random_serial_number(), not_valid_before=now - dt.timedelta(days=1),
        not_valid_after=now + dt.timedelta(seconds=4), extensions=list(leaf_cert.extensions),
    )
    short_leaf = builder_x.sign(ca_key, hashes.SHA256())
    short = c2pa.Signer.from_info(c2pa.C2paSignerInfo(
        c2pa.C2paSigningAlg.ES256, pem_cert(short_leaf) + pem_cert(ca_cert), pem_key(leaf_key), None))
    out = io.BytesIO()
    c2pa.Builder(md, context=fast).sign(short, "image/png", io.BytesIO(png), out)
    exp_ctx = context(trust_settings(pem_cert(ca_cert)))
    st_before = status_codes(read_bytes(out.getvalue(), "image/png", exp_ctx))
    time.sleep(6)
    st_after = status_codes(read_bytes(out.getvalue(), "image/png", exp_ctx))
    results["no_tsa_leaf_expires_after_signing"] = {
        "read_before_expiry": {"state": st_before["validation_state"], "failure": st_before["failure"]},
        "read_after_expiry": {"state": st_after["validation_state"], "failure": st_after["failure"]},
    }
    print("leaf expiry without TSA:", results["no_tsa_leaf_expires_after_signing"])

    # 8. Library versions
    results["versions"] = {"c2pa-python": c2pa.__version__, "c2pa-rs (sdk_version)": c2pa.sdk_version()}
    print(results["versions"])
    (OUT / "s08_misc.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
