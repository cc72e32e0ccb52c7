"""Step 1: offline key material and which certificate profiles c2pa 0.38.x accepts.

For every variant: build Signer.from_info -> sign a small PNG in memory -> read back with
(a) the default Context (no trust anchors) and (b) a Context trusting our local root via trust.user_anchors.
Records exceptions and validation codes verbatim into out/s01_certs.json.

Run: .venv/bin/python s01_certs.py
"""

from __future__ import annotations

import datetime as dt
import json

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from common import (
    C2PA_CLAIM_SIGNING_EKU,
    OUT,
    KeyMaterial,
    _name,
    _new_key,
    context,
    make_ca,
    make_leaf,
    make_signer,
    noise_rgb,
    pem_cert,
    pem_key,
    png_bytes,
    read_bytes,
    sign_bytes,
    status_codes,
    trust_settings,
)

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
MS_C2PA = ObjectIdentifier("1.3.6.1.4.1.311.76.59.1.9")


def self_signed_leaf(ca_flag: bool) -> KeyMaterial:
    """A leaf that signs itself (no separate CA)."""
    key = _new_key("ec")
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name("Rupali Self Signed"))
        .issuer_name(_name("Rupali Self Signed"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, ca_flag, False, False, False), critical=True
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, C2PA_CLAIM_SIGNING_EKU]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    cert = b.sign(key, hashes.SHA256())
    pem = pem_cert(cert)
    return KeyMaterial(pem, pem, pem_key(key), c2pa.C2paSigningAlg.ES256)


def variant(kind: str = "ec", **leaf_kwargs) -> KeyMaterial:
    ca_key, ca_cert = make_ca(kind)
    leaf_key, leaf_cert = make_leaf(ca_key, ca_cert, kind, **leaf_kwargs)
    alg = c2pa.C2paSigningAlg.ES256 if kind == "ec" else c2pa.C2paSigningAlg.PS256
    return KeyMaterial(pem_cert(ca_cert), pem_cert(leaf_cert), pem_key(leaf_key), alg)


def build_variants() -> dict[str, tuple[KeyMaterial, bytes | None]]:
    """name -> (key material, chain override or None)."""
    v: dict[str, tuple[KeyMaterial, bytes | None]] = {}
    v["good_es256 (EKU emailProtection + c2pa claimSigning)"] = (variant("ec"), None)
    v["good_ps256 (RSA-2048, PSS-signed certs)"] = (variant("rsa"), None)
    v["eku emailProtection only"] = (variant("ec", eku=[ExtendedKeyUsageOID.EMAIL_PROTECTION]), None)
    v["eku c2pa claimSigning only (1.3.6.1.4.1.62558.2.1)"] = (variant("ec", eku=[C2PA_CLAIM_SIGNING_EKU]), None)
    v["eku documentSigning only (1.3.6.1.5.5.7.3.36)"] = (variant("ec", eku=[DOCUMENT_SIGNING]), None)
    v["eku MS C2PA only (1.3.6.1.4.1.311.76.59.1.9)"] = (variant("ec", eku=[MS_C2PA]), None)
    v["eku serverAuth only"] = (variant("ec", eku=[ExtendedKeyUsageOID.SERVER_AUTH]), None)
    v["eku anyExtendedKeyUsage"] = (variant("ec", eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]), None)
    v["no EKU extension"] = (variant("ec", eku=[]), None)
    v["KU without digitalSignature (keyEncipherment only)"] = (variant("ec", digital_signature=False), None)
    v["leaf basicConstraints CA:true"] = (variant("ec", leaf_is_ca=True), None)
    v["leaf without basicConstraints"] = (variant("ec", with_basic_constraints=False), None)
    v["leaf without AKI"] = (variant("ec", with_aki=False), None)
    v["leaf without SKI"] = (variant("ec", with_ski=False), None)
    v["leaf expired"] = (variant("ec", not_before_days=-30, days_valid=-1), None)
    v["leaf not yet valid"] = (variant("ec", not_before_days=2, days_valid=30), None)
    km = variant("ec")
    v["chain = leaf only (no CA cert in x5chain)"] = (km, km.leaf_cert_pem)
    v["self-signed leaf CA:false"] = (self_signed_leaf(False), None)
    v["self-signed leaf CA:true"] = (self_signed_leaf(True), None)
    # wrong key for the cert
    good = variant("ec")
    other = variant("ec")
    v["private key does not match leaf"] = (
        KeyMaterial(good.ca_cert_pem, good.leaf_cert_pem, other.leaf_key_pem, good.alg),
        None,
    )
    # alg mismatch: ES256 requested with an RSA key
    rsa_km = variant("rsa")
    v["alg ES256 with RSA key"] = (KeyMaterial(rsa_km.ca_cert_pem, rsa_km.leaf_cert_pem, rsa_km.leaf_key_pem,
                                               c2pa.C2paSigningAlg.ES256), None)
    return v


def main() -> None:
    png = png_bytes(noise_rgb(64))
    results = {}
    for name, (km, chain) in build_variants().items():
        row: dict = {}
        try:
            signer = make_signer(km, chain)
        except Exception as e:  # noqa: BLE001
            row["signer_error"] = f"{type(e).__name__}: {e}"
            results[name] = row
            print(f"{name}: signer error {row['signer_error']}")
            continue
        try:
            signed = sign_bytes(png, "image/png", signer, ctx=context({"builder": {"thumbnail": {"enabled": False}}}))
        except Exception as e:  # noqa: BLE001
            row["sign_error"] = f"{type(e).__name__}: {e}"
            results[name] = row
            print(f"{name}: sign error {row['sign_error']}")
            continue
        for label, ctx in (("default_ctx", None), ("user_anchors_ctx", context(trust_settings(km.ca_cert_pem)))):
            try:
                st = status_codes(read_bytes(signed, "image/png", ctx))
                row[label] = {"state": st["validation_state"], "failure": st["failure"]}
                if label == "user_anchors_ctx":
                    row[label]["trusted_code"] = "signingCredential.trusted" in st["success"]
            except Exception as e:  # noqa: BLE001
                row[label] = f"{type(e).__name__}: {e}"
        results[name] = row
        print(f"{name}:\n   default: {row['default_ctx']}\n   anchors: {row['user_anchors_ctx']}")
    # Extra: trust via allowed_list (the leaf itself) and trust with a *different* CA as anchor.
    km = variant("ec")
    signed = sign_bytes(png, "image/png", make_signer(km), ctx=context({"builder": {"thumbnail": {"enabled": False}}}))
    other_ca = pem_cert(make_ca("ec", cn="Some Other Root")[1])
    extra = {}
    for label, settings in (
        ("allowed_list = leaf cert", {"trust": {"allowed_list": km.leaf_cert_pem.decode()}}),
        ("user_anchors = unrelated CA", {"trust": {"user_anchors": other_ca.decode()}}),
        ("trust_anchors = our CA (replaces built-ins)", {"trust": {"trust_anchors": km.ca_cert_pem.decode()}}),
        ("verify_trust = false", {"verify": {"verify_trust": False}}),
    ):
        st = status_codes(read_bytes(signed, "image/png", context(settings)))
        extra[label] = {"state": st["validation_state"], "failure": st["failure"],
                        "trusted_code": "signingCredential.trusted" in st["success"]}
        print(f"{label}: {extra[label]}")
    # allowed_list variants (private credential store): PEM leaf, base64 SHA-256 of the leaf DER, with anchors
    import base64
    import hashlib

    from cryptography.hazmat.primitives import serialization

    leaf_der = x509.load_pem_x509_certificate(km.leaf_cert_pem).public_bytes(serialization.Encoding.DER)
    leaf_hash = base64.b64encode(hashlib.sha256(leaf_der).digest()).decode()
    for label, settings in (
        ("allowed_list = base64 sha256 of leaf DER", {"trust": {"allowed_list": leaf_hash + "\n"}}),
        ("allowed_list = leaf+CA chain PEM", {"trust": {"allowed_list": km.chain_pem.decode()}}),
        ("allowed_list = leaf + user_anchors = unrelated CA",
         {"trust": {"allowed_list": km.leaf_cert_pem.decode(), "user_anchors": other_ca.decode()}}),
    ):
        st = status_codes(read_bytes(signed, "image/png", context(settings)))
        extra[label] = {"state": st["validation_state"], "failure": st["failure"],
                        "trusted_code": "signingCredential.trusted" in st["success"]}
        print(f"{label}: {extra[label]}")
    results["_trust_settings_variants"] = extra

    # EKUs outside the built-in default set: sign with verify_after_sign=false, then read with/without trust_config
    eku_cfg = "1.3.6.1.4.1.62558.2.1\n1.3.6.1.5.5.7.3.36\n1.3.6.1.4.1.311.76.59.1.9\n"
    eku_rows = {}
    for name, eku in (("c2pa claimSigning only", [C2PA_CLAIM_SIGNING_EKU]),
                      ("documentSigning only", [DOCUMENT_SIGNING]), ("MS C2PA only", [MS_C2PA])):
        ekm = variant("ec", eku=eku)
        no_verify = {"builder": {"thumbnail": {"enabled": False}}, "verify": {"verify_after_sign": False}}
        signed_e = sign_bytes(png, "image/png", make_signer(ekm), ctx=context(no_verify))
        row = {}
        for label, settings in (
            ("read: user_anchors", trust_settings(ekm.ca_cert_pem)),
            ("read: user_anchors + trust_config", {"trust": {"user_anchors": ekm.ca_cert_pem.decode(),
                                                            "trust_config": eku_cfg}}),
        ):
            st = status_codes(read_bytes(signed_e, "image/png", context(settings)))
            row[label] = {"state": st["validation_state"], "failure": st["failure"]}
        try:
            sign_bytes(png, "image/png", make_signer(ekm),
                       ctx=context({"builder": {"thumbnail": {"enabled": False}}, "trust": {"trust_config": eku_cfg}}))
            row["sign with trust_config in signing Context (verify_after_sign on)"] = "OK"
        except Exception as e:  # noqa: BLE001
            row["sign with trust_config in signing Context (verify_after_sign on)"] = f"{type(e).__name__}: {e}"
        eku_rows[name] = row
        print(name, row)
    results["_eku_trust_config"] = eku_rows

    # Are the profile errors raised by verify_after_sign, or by the signer itself? Retry with verification off.
    no_verify = {"builder": {"thumbnail": {"enabled": False}}, "verify": {"verify_after_sign": False}}
    pre = {}
    for name, bad in (("no AKI", variant("ec", with_aki=False)), ("no EKU", variant("ec", eku=[])),
                      ("leaf CA:true", variant("ec", leaf_is_ca=True)),
                      ("no digitalSignature", variant("ec", digital_signature=False)),
                      ("self-signed CA:true", self_signed_leaf(True))):
        try:
            sign_bytes(png, "image/png", make_signer(bad), ctx=context(no_verify))
            pre[name] = "signed OK"
        except Exception as e:  # noqa: BLE001
            pre[name] = f"{type(e).__name__}: {e}"
    results["_verify_after_sign_false"] = pre
    print("verify_after_sign=false:", pre)
    (OUT / "s01_certs.json").write_text(json.dumps(results, indent=2))
    (OUT / "ca_es256.pem").write_bytes(km.ca_cert_pem)
    (OUT / "leaf_es256_chain.pem").write_bytes(km.chain_pem)
    (OUT / "leaf_es256_key.pem").write_bytes(km.leaf_key_pem)


if __name__ == "__main__":
    main()
