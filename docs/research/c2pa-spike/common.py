"""Shared helpers for the c2pa-python 0.38.x spike.

Everything here runs offline: keys and certificates come from `cryptography`, images from Pillow.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from PIL import Image, PngImagePlugin

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
OUT.mkdir(exist_ok=True)

C2PA_CLAIM_SIGNING_EKU = ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
DST_TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
DST_ALGO = "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicMedia"

PARAMETERS_TEXT = "a red fox in the snow, photorealistic\nSteps: 30, Sampler: Euler a, CFG scale: 7, Seed: 1234"


# --------------------------------------------------------------------------- keys and certificates


@dataclass
class KeyMaterial:
    ca_cert_pem: bytes
    leaf_cert_pem: bytes
    leaf_key_pem: bytes
    alg: c2pa.C2paSigningAlg

    @property
    def chain_pem(self) -> bytes:
        """Leaf first, then the issuing CA (c2pa wants the chain without necessarily the root; we include it)."""
        return self.leaf_cert_pem + self.ca_cert_pem


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Rupali Local"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _new_key(kind: str):
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _sign_args(kind: str):
    """Arguments to CertificateBuilder.sign for the issuer key type."""
    if kind == "ec":
        return {"algorithm": hashes.SHA256()}
    # RSASSA-PSS signed certificates (the PS256 leaf is signed by a PSS-signing RSA CA).
    return {
        "algorithm": hashes.SHA256(),
        "rsa_padding": padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
    }


def make_ca(kind: str = "ec", cn: str = "Rupali Local Root CA"):
    key = _new_key(kind)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = builder.sign(key, **_sign_args(kind))
    return key, cert


def make_leaf(
    ca_key,
    ca_cert,
    kind: str = "ec",
    *,
    ca_kind: str | None = None,
    eku: list | None = None,
    digital_signature: bool = True,
    leaf_is_ca: bool = False,
    with_aki: bool = True,
    with_ski: bool = True,
    with_basic_constraints: bool = True,
    days_valid: int = 365,
    not_before_days: int = -1,
    cn: str = "Rupali Image Signer",
):
    """Create a leaf (end-entity) certificate issued by ca_key/ca_cert.

    Defaults give the recipe that validates: KU digitalSignature (critical), EKU emailProtection + C2PA claim signing,
    basicConstraints CA:false (critical), AKI + SKI.
    """
    ca_kind = ca_kind or kind
    if eku is None:
        eku = [ExtendedKeyUsageOID.EMAIL_PROTECTION, C2PA_CLAIM_SIGNING_EKU]
    key = _new_key(kind)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=not_before_days))
        .not_valid_after(now + dt.timedelta(days=days_valid))
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature,
                content_commitment=False,
                key_encipherment=not digital_signature,  # keep *some* bit set when digitalSignature is off
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=leaf_is_ca,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if with_basic_constraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=leaf_is_ca, path_length=None), critical=True
        )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if with_ski:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if with_aki:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    cert = builder.sign(ca_key, **_sign_args(ca_kind))
    return key, cert


def pem_cert(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_key_material(kind: str = "ec", **leaf_kwargs) -> KeyMaterial:
    ca_key, ca_cert = make_ca(kind)
    leaf_key, leaf_cert = make_leaf(ca_key, ca_cert, kind, **leaf_kwargs)
    alg = c2pa.C2paSigningAlg.ES256 if kind == "ec" else c2pa.C2paSigningAlg.PS256
    return KeyMaterial(pem_cert(ca_cert), pem_cert(leaf_cert), pem_key(leaf_key), alg)


def make_signer(km: KeyMaterial, chain_pem: bytes | None = None) -> c2pa.Signer:
    """Signer.from_info with ta_url=None (no timestamp authority, no network)."""
    info = c2pa.C2paSignerInfo(km.alg, chain_pem or km.chain_pem, km.leaf_key_pem, None)
    return c2pa.Signer.from_info(info)


# --------------------------------------------------------------------------- images


def noise_rgb(size: int = 1024, seed: int = 0) -> Image.Image:
    """Random RGB noise: a PNG of it is ~3 MB and does not compress away."""
    import random

    rnd = random.Random(seed)
    return Image.frombytes("RGB", (size, size), rnd.randbytes(size * size * 3))


def gradient_rgb(size: int = 1024) -> Image.Image:
    """Smooth gradient plus mild noise: a more photo-like image."""
    import random

    rnd = random.Random(1)
    base = Image.linear_gradient("L").resize((size, size))
    r = base
    g = base.rotate(90)
    b = Image.frombytes("L", (size, size), bytes(rnd.randrange(0, 40) for _ in range(size * size)))
    return Image.merge("RGB", (r, g, b))


def png_bytes(img: Image.Image, parameters: str | None = PARAMETERS_TEXT, xmp: bytes | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    if parameters is not None:
        info.add_text("parameters", parameters)  # tEXt chunk (latin-1 text)
    if xmp is not None:
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"), zip=False)
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def jpeg_bytes(img: Image.Image, xmp: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    kw = {"quality": 92}
    if xmp is not None:
        kw["xmp"] = xmp
    img.save(buf, format="JPEG", **kw)
    return buf.getvalue()


def webp_bytes(img: Image.Image, xmp: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    kw = {"quality": 90}
    if xmp is not None:
        kw["xmp"] = xmp
    img.save(buf, format="WEBP", **kw)
    return buf.getvalue()


# --------------------------------------------------------------------------- manifests, settings, sign, read


def manifest_definition(
    dst: str = DST_TRAINED,
    provider: str = "local-diffusers",
    model: str = "stable-diffusion-xl-base-1.0",
    version: str = "0.1.0",
    title: str | None = "rupali-output.png",
    with_parent: bool = False,
) -> dict:
    action = {
        "action": "c2pa.created",
        "digitalSourceType": dst,
        "softwareAgent": {"name": f"{provider}/{model}", "version": "1.0"},
        "parameters": {"provider": provider, "model": model},
    }
    actions = [action]
    if with_parent:
        # image-to-image: the output is an edit of a parent ingredient ('c2pa.opened' must reference it)
        actions = [
            {
                "action": "c2pa.opened",
                "parameters": {"ingredientIds": ["parent-1"]},
            },
            {
                "action": "c2pa.edited",
                "digitalSourceType": dst,
                "softwareAgent": {"name": f"{provider}/{model}", "version": "1.0"},
                "description": "image-to-image generation",
            },
        ]
    md = {
        "claim_generator_info": [{"name": "Rupali", "version": version}],
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
    }
    if title:
        md["title"] = title
    return md


FAST_SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}


def trust_settings(ca_pem: bytes) -> dict:
    return {"trust": {"user_anchors": ca_pem.decode()}, "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}


def context(settings: dict | None = None) -> c2pa.Context:
    return c2pa.Context.from_dict(settings) if settings else c2pa.Context()


def sign_bytes(
    data: bytes,
    mime: str,
    signer: c2pa.Signer,
    manifest: dict | None = None,
    ctx: c2pa.Context | None = None,
    parent: tuple[bytes, str] | None = None,
) -> bytes:
    """Sign entirely in memory: BytesIO in, BytesIO out. Returns the signed asset bytes."""
    builder = c2pa.Builder(manifest or manifest_definition(), context=ctx) if ctx else c2pa.Builder(
        manifest or manifest_definition()
    )
    if parent is not None:
        pdata, pmime = parent
        builder.add_ingredient(
            {"title": "parent", "relationship": "parentOf", "label": "parent-1"}, pmime, io.BytesIO(pdata)
        )
    src = io.BytesIO(data)
    dst = io.BytesIO()
    builder.sign(signer, mime, src, dst)  # returns the raw manifest bytes (JUMBF); builder is closed afterwards
    return dst.getvalue()


def read_bytes(data: bytes, mime: str, ctx: c2pa.Context | None = None) -> dict:
    """Return the parsed manifest store JSON (Reader.json())."""
    with c2pa.Reader(mime, io.BytesIO(data), context=ctx) as reader:
        return json.loads(reader.json())


def status_codes(store: dict) -> dict:
    """Collect validation codes from a Reader.json() manifest store."""
    vr = store.get("validation_results") or {}
    active = vr.get("activeManifest") or {}
    return {
        "validation_state": store.get("validation_state"),
        "success": [c["code"] for c in active.get("success", [])],
        "informational": [c["code"] for c in active.get("informational", [])],
        "failure": [(c["code"], c.get("explanation")) for c in active.get("failure", [])],
        "validation_status": [(c["code"], c.get("explanation")) for c in store.get("validation_status", []) or []],
    }
