"""Content Credentials (C2PA): signing PNG, JPEG and WebP as AI output or procedural, reading them back, noticing
every change made after signing, the operator's own keys, the self-made bundle, hostile files and the
``rupali image inspect`` command.

The tamper recipes and hostile inputs are those of docs/research/c2pa-spike (REPORT.md sections 3 and 6).
"""

from __future__ import annotations

import io
import json
import os
import random
import stat
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image, ImageFile
from pydantic import ValidationError

from rupali import __version__, provenance, xmp
from rupali.cli import main
from rupali.config import ConfigError, Settings, get_settings, reset_settings
from rupali.imaging import InvalidImage
from rupali.provenance import (
    BUNDLE_NAME,
    ChecksBusy,
    ContentCredentials,
    Inspection,
    Origin,
    SigningUnavailable,
    examine,
    make_self_signed_chain,
    signing,
)
from rupali.runtime import Runtime

pytestmark = pytest.mark.sqlite_only  # nothing here touches the database

SIDE = 256
MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000
PARAMETERS = "a red fox in the snow, photorealistic\nSteps: 30, Sampler: Euler a, CFG scale: 7, Seed: 1234"
# Not UTC, with microseconds: the manifest states the instant, whatever the zone it was given in.
MADE_AT = datetime(2025, 3, 4, 7, 6, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
FORMATS = {"PNG": ("PNG", {}), "JPEG": ("JPEG", {"quality": 92}), "WEBP": ("WEBP", {"quality": 90}),
           "WEBP-lossless": ("WEBP", {"lossless": True})}


# --- images and chunks ------------------------------------------------------------------------------------------


def noise(seed: int = 0, side: int = SIDE) -> Image.Image:
    return Image.frombytes("RGB", (side, side), random.Random(seed).randbytes(side * side * 3))


def encode(image: Image.Image, image_format: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def origin(source_type: str = xmp.TRAINED, **changes: object) -> Origin:
    values: dict = {"source_type": source_type, "provider": "Runware", "model": "flux-dev", "created_at": MADE_AT}
    return Origin(**{**values, **changes})


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


def chunks(png: bytes) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(type, body, the whole chunk) for each chunk of a PNG."""
    position = 8
    while position + 8 <= len(png):
        (length,) = struct.unpack(">I", png[position:position + 4])
        raw = png[position:position + 12 + length]
        yield raw[4:8], raw[8:8 + length], raw
        position += 12 + length


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def rewrite_chunks(png: bytes, change: Callable[[bytes, bytes], bytes | None]) -> bytes:
    """The PNG with each chunk's body replaced by ``change(type, body)`` (None: unchanged), CRCs recomputed."""
    out = [png[:8]]
    for kind, body, raw in chunks(png):
        new = change(kind, body)
        out.append(raw if new is None else chunk(kind, new))
    return b"".join(out)


def insert_after_ihdr(png: bytes, kind: bytes, body: bytes) -> bytes:
    end = 8 + 12 + 13
    return png[:end] + chunk(kind, body) + png[end:]


def cabx(png: bytes) -> bytes:
    return next(body for kind, body, _ in chunks(png) if kind == b"caBX")


def tamper_pixel(signed: bytes) -> bytes:
    """Pixel (10, 10) one step redder, the IDAT re-encoded losslessly; every other chunk (caBX, text) kept."""
    with Image.open(io.BytesIO(signed)) as image:
        changed = image.convert("RGB")
    red, green, blue = changed.getpixel((10, 10))
    changed.putpixel((10, 10), ((red + 1) % 256, green, blue))
    new_idat = b"".join(raw for kind, _, raw in chunks(encode(changed)) if kind == b"IDAT")
    out, placed = [signed[:8]], False
    for kind, _, raw in chunks(signed):
        if kind != b"IDAT":
            out.append(raw)
        elif not placed:
            out.append(new_idat)
            placed = True
    return b"".join(out)


def tamper_parameters(signed: bytes) -> bytes:
    """One byte of the ``parameters`` text changed (the seed 1234 becomes 1235), CRC recomputed."""
    def change(kind: bytes, body: bytes) -> bytes | None:
        if kind == b"iTXt" and body.startswith(b"parameters\0"):
            assert b"Seed: 1234" in body
            return body.replace(b"Seed: 1234", b"Seed: 1235")
        return None
    return rewrite_chunks(signed, change)


def tamper_xmp(signed_png: bytes) -> bytes:
    """The XMP's source type changed after signing: the packet in the XMP iTXt chunk is rewritten (its length and
    CRC with it); the manifest, which states the source type too, is left alone."""
    def change(kind: bytes, body: bytes) -> bytes | None:
        if kind == b"iTXt" and body.startswith(b"XML:com.adobe.xmp\0"):
            assert b"trainedAlgorithmicMedia" in body
            return body.replace(b"trainedAlgorithmicMedia", b"digitalCapture")
        return None
    return rewrite_chunks(signed_png, change)


def flip_scan_byte(signed_jpeg: bytes) -> bytes:
    """One byte of the entropy-coded data, well inside the scan, flipped (no 0xFF is made or broken)."""
    data = bytearray(signed_jpeg)
    position = len(data) - 100
    while data[position] in (0xFF, 0xFE) or data[position - 1] == 0xFF:
        position -= 1
    data[position] ^= 0x01
    return bytes(data)


# --- keys -------------------------------------------------------------------------------------------------------


def rsa_chain(tmp_path: Path, *, common_name: str = "Example Press image signing") -> tuple[Path, Path]:
    """An RSA root and a leaf it issued (PSS-signed), in the profile C2PA validators accept; written as PEM files."""
    pss = {"algorithm": hashes.SHA256(),
           "rsa_padding": padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)}
    now = datetime.now(UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Press"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def usage(*, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                             encipher_only=False, decipher_only=False)

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (x509.CertificateBuilder().subject_name(name("Example Press root")).issuer_name(name("Example Press root"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(ca=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, **pss))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    leaf = (x509.CertificateBuilder().subject_name(name(common_name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
            .add_extension(usage(ca=False), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(ca_key, **pss))
    certificate, private_key = tmp_path / "signing-chain.pem", tmp_path / "signing-key.pem"
    certificate.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    private_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    return certificate, private_key


def configure(monkeypatch: pytest.MonkeyPatch, **variables: object) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, str(value))
    reset_settings()


@pytest.fixture(scope="module")
def credentials() -> ContentCredentials:
    return ContentCredentials(*make_self_signed_chain("Test Operator"))


@pytest.fixture(scope="module")
def signed_png(credentials: ContentCredentials) -> bytes:
    return credentials.sign(encode(noise()), "PNG", origin(), parameters=PARAMETERS)


# --- signing and reading back -------------------------------------------------------------------------------------


@pytest.mark.parametrize("source_type", [xmp.TRAINED, xmp.ALGORITHMIC], ids=["ai", "procedural"])
@pytest.mark.parametrize("kind", list(FORMATS))
def test_a_signed_image_reads_back_trusted_with_what_made_it(credentials, kind, source_type):
    image_format, options = FORMATS[kind]
    raw = encode(noise(), image_format, **options)
    made = origin(source_type)
    signed = credentials.sign(raw, image_format, made, width=SIDE, height=SIDE)
    assert signed != raw
    found = credentials.inspect(signed, image_format)
    assert (found.has_credentials, found.state, found.intact, found.own) == (True, "Trusted", True, True)
    assert found.problems == [] and found.error is None
    assert found.source_type == found.xmp_source_type == source_type
    assert found.ai_generated is (source_type == xmp.TRAINED)
    assert found.software_agent == "Runware / flux-dev"
    assert found.claim_generator == f"Rupali {__version__}"
    assert found.signed_at == made.created_at and found.signed_at.utcoffset() == timedelta(0)
    assert found.signer == "Test Operator image signing" and found.issuer == "Test Operator"
    assert found.verdict() == ("Content Credentials intact: signed by Test Operator image signing, this "
                               "installation's own certificate.")
    public = found.public()
    assert public["intact"] is True and public["ai_generated"] is (source_type == xmp.TRAINED)
    assert json.loads(json.dumps(public))["signed_at"] == "2025-03-04T05:06:05.123456+00:00"
    assert pixels(signed) == pixels(raw)  # no re-encode: the same pixels decode from the signed file
    checked = examine(credentials, signed, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    assert (checked.format, checked.width, checked.height, checked.intact) == (image_format, SIDE, SIDE, True)


def test_the_prompt_variant_is_in_the_manifest_and_no_thumbnail_is(credentials):
    made = origin(prompt="my private prompt", negative_prompt="blurry", seed=77)
    signed = credentials.sign(encode(noise()), "PNG", made, parameters=None)
    with c2pa.Reader("image/png", io.BytesIO(signed)) as reader:
        manifest = reader.get_active_manifest()
        state = reader.get_validation_state()
    assert state == "Valid"  # signature and hashes fine, the signer unknown to a reader without our root
    [actions] = [a["data"]["actions"] for a in manifest["assertions"] if a["label"].startswith("c2pa.actions")]
    assert [action["action"] for action in actions] == ["c2pa.created"]
    assert actions[0]["parameters"]["prompt"] == "my private prompt" and actions[0]["parameters"]["seed"] == 77
    assert "thumbnail" not in manifest  # no full-size re-encode inside the file


def test_a_png_keeps_the_parameters_text_only_when_given(credentials):
    with_text = credentials.sign(encode(noise()), "PNG", origin(), parameters=PARAMETERS)
    with Image.open(io.BytesIO(with_text)) as image:
        assert image.text["parameters"] == PARAMETERS
    # A provider's PNG may carry its own text; with parameters=None nothing of it (or ours) remains.
    provider_png = encode(noise(), pnginfo=_png_text("parameters", "the provider's own settings"))
    without = credentials.sign(provider_png, "PNG", origin(), parameters=None)
    with Image.open(io.BytesIO(without)) as image:
        assert "parameters" not in image.text and "XML:com.adobe.xmp" in image.text
    assert b"provider's own settings" not in without
    assert credentials.inspect(without, "PNG").intact


def _png_text(key: str, value: str) -> object:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info


@pytest.mark.parametrize("parent_kind", ["unsigned JPEG", "signed PNG"])
def test_image_to_image_names_its_source_as_a_parent_ingredient(credentials, signed_png, parent_kind):
    parent = encode(noise(5), "JPEG", quality=90) if parent_kind == "unsigned JPEG" else signed_png
    signed = credentials.sign(encode(noise(6)), "PNG", origin(parent=parent), parameters=None)
    found = credentials.inspect(signed, "PNG")
    assert found.intact and found.state == "Trusted", found.problems
    assert found.source_type == xmp.TRAINED and found.software_agent == "Runware / flux-dev"
    assert found.signed_at == MADE_AT
    with c2pa.Reader("image/png", io.BytesIO(signed)) as reader:
        manifest = reader.get_active_manifest()
    [ingredient] = manifest["ingredients"]
    assert ingredient["relationship"] == "parentOf"
    assert ingredient["format"] == ("image/jpeg" if parent_kind == "unsigned JPEG" else "image/png")
    [actions] = [a["data"]["actions"] for a in manifest["assertions"] if a["label"].startswith("c2pa.actions")]
    assert [action["action"] for action in actions] == ["c2pa.opened", "c2pa.edited"]
    assert actions[1]["digitalSourceType"] == xmp.TRAINED
    assert actions[0]["parameters"]["ingredients"]  # the SDK turned our label into a hashed link to the ingredient


# --- tampering ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["pixel", "parameters", "xmp", "jpeg scan"])
def test_any_change_after_signing_breaks_the_content_hash(credentials, signed_png, case):
    if case == "jpeg scan":
        image_format = "JPEG"
        signed = credentials.sign(encode(noise(), "JPEG", quality=92), "JPEG", origin())
        tampered = flip_scan_byte(signed)
    else:
        image_format, signed = "PNG", signed_png
        tampered = {"pixel": tamper_pixel, "parameters": tamper_parameters, "xmp": tamper_xmp}[case](signed)
    assert tampered != signed
    assert credentials.inspect(signed, image_format).intact  # the untouched file is fine
    found = credentials.inspect(tampered, image_format)
    assert found.has_credentials and found.intact is False and found.own is False
    assert found.state == "Invalid"
    assert any(problem.startswith("assertion.dataHash.mismatch") for problem in found.problems), found.problems
    assert found.verdict() == ("Content Credentials are present but do not match the file: it was changed after "
                               "signing.")
    if case == "pixel":
        assert pixels(tampered) != pixels(signed)
        with Image.open(io.BytesIO(tampered)) as image:
            assert image.text["parameters"] == PARAMETERS
    if case == "parameters":
        with Image.open(io.BytesIO(tampered)) as image:
            assert image.text["parameters"].endswith("Seed: 1235")
    if case == "xmp":
        assert found.xmp_source_type == xmp.IPTC_TYPES + "digitalCapture" and found.source_type == xmp.TRAINED


# --- the operator's own keys --------------------------------------------------------------------------------------


def test_an_operator_s_ps256_chain_signs_and_reads_back_intact(tmp_path, monkeypatch):
    certificate, key = rsa_chain(tmp_path)
    configure(monkeypatch, RUPALI_C2PA_CERTIFICATE=certificate, RUPALI_C2PA_PRIVATE_KEY=key,
              RUPALI_C2PA_ALGORITHM="PS256")
    settings = get_settings()
    configured = ContentCredentials.from_settings(settings)
    assert configured.self_made is False and configured.signer_name == "Example Press image signing"
    signed = configured.sign(encode(noise()), "PNG", origin(), parameters=PARAMETERS)
    found = configured.inspect(signed, "PNG")
    assert (found.state, found.intact, found.own) == ("Trusted", True, True), found.problems
    assert found.signer == "Example Press image signing" and found.issuer == "Example Press"
    with c2pa.Reader("image/png", io.BytesIO(signed)) as reader:
        assert reader.get_active_manifest()["signature_info"]["alg"].upper() == "PS256"
    # Another installation's own root does not vouch for this signer, but the file is still intact there.
    elsewhere = ContentCredentials(*make_self_signed_chain("Somebody Else")).inspect(signed, "PNG")
    assert (elsewhere.state, elsewhere.intact, elsewhere.own) == ("Valid", True, False)
    described = signing(settings)
    assert (described.signer, described.organisation, described.self_made) == (
        "Example Press image signing", "Example Press", False)
    assert not (settings.data_dir / BUNDLE_NAME).exists()  # no self-made key next to the operator's


@pytest.mark.parametrize("given", ["RUPALI_C2PA_CERTIFICATE", "RUPALI_C2PA_PRIVATE_KEY"])
def test_half_a_configuration_is_refused_naming_both_variables(tmp_path, monkeypatch, given):
    certificate, key = rsa_chain(tmp_path)
    configure(monkeypatch, **{given: certificate if given.endswith("CERTIFICATE") else key})
    with pytest.raises(ValidationError, match="RUPALI_C2PA_CERTIFICATE and RUPALI_C2PA_PRIVATE_KEY"):
        Settings()
    with pytest.raises(ConfigError) as caught:
        get_settings()
    assert "RUPALI_C2PA_CERTIFICATE" in str(caught.value) and "RUPALI_C2PA_PRIVATE_KEY" in str(caught.value)


def test_an_algorithm_that_does_not_fit_the_key_is_a_config_error(tmp_path, monkeypatch):
    certificate, key = rsa_chain(tmp_path)
    configure(monkeypatch, RUPALI_C2PA_CERTIFICATE=certificate, RUPALI_C2PA_PRIVATE_KEY=key,
              RUPALI_C2PA_ALGORITHM="ES256")
    with pytest.raises(ConfigError, match=r"^the Content Credentials key cannot sign: ") as caught:
        ContentCredentials.from_settings(get_settings())
    assert "\n" not in str(caught.value) and caught.value.__cause__ is None


def test_an_unsupported_algorithm_or_missing_file_is_a_config_error(tmp_path, monkeypatch):
    certificate, key = rsa_chain(tmp_path)
    configure(monkeypatch, RUPALI_C2PA_CERTIFICATE=certificate, RUPALI_C2PA_PRIVATE_KEY=key,
              RUPALI_C2PA_ALGORITHM="ED25519")
    with pytest.raises(ConfigError, match="RUPALI_C2PA_ALGORITHM"):
        get_settings()
    configure(monkeypatch, RUPALI_C2PA_ALGORITHM="PS256", RUPALI_C2PA_PRIVATE_KEY=tmp_path / "no-such-key.pem")
    with pytest.raises(ConfigError, match=r"^cannot read the Content Credentials certificate or key \("):
        ContentCredentials.from_settings(get_settings())


def test_a_key_that_is_not_the_certificate_s_is_refused_at_start(tmp_path, monkeypatch):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    certificate, _ = rsa_chain(tmp_path / "one")
    _, other_key = rsa_chain(tmp_path / "two")
    configure(monkeypatch, RUPALI_C2PA_CERTIFICATE=certificate, RUPALI_C2PA_PRIVATE_KEY=other_key,
              RUPALI_C2PA_ALGORITHM="PS256")
    with pytest.raises(ConfigError) as caught:
        ContentCredentials.from_settings(get_settings())
    assert "\n" not in str(caught.value)


# --- the self-made bundle -----------------------------------------------------------------------------------------


def test_the_self_made_bundle_is_made_once_and_private():
    settings = get_settings()
    first = ContentCredentials.from_settings(settings)
    bundle = settings.data_dir / BUNDLE_NAME
    assert first.self_made and bundle.exists()
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    made = bundle.read_bytes()
    assert made.startswith(b"-----BEGIN PRIVATE KEY-----") and made.count(b"-----BEGIN CERTIFICATE-----") == 2
    second = ContentCredentials.from_settings(settings)
    assert bundle.read_bytes() == made and second.valid_until == first.valid_until
    assert [p.name for p in settings.data_dir.iterdir() if BUNDLE_NAME in p.name] == [BUNDLE_NAME]  # no leftovers
    # What one signed, the other (a restarted process) reads as its own.
    signed = first.sign(encode(noise()), "PNG", origin())
    assert second.inspect(signed, "PNG").own
    assert first.valid_until - datetime.now(UTC) > timedelta(days=365 * 19)
    described = signing(settings)
    assert described.self_made and described.valid_until == first.valid_until
    assert described.signer == first.signer_name == f"{settings.operator_name} image signing"


@pytest.mark.parametrize("damage", ["garbage", "empty", "cut inside the key", "certificates only"])
def test_a_damaged_bundle_is_a_config_error_naming_the_file(damage):
    settings = get_settings()
    ContentCredentials.from_settings(settings)
    bundle = settings.data_dir / BUNDLE_NAME
    whole = bundle.read_bytes()
    bundle.write_bytes({"garbage": b"this is not PEM at all\n", "empty": b"", "cut inside the key": whole[:120],
                        "certificates only": whole[whole.index(b"-----BEGIN CERTIFICATE-----"):]}[damage])
    with pytest.raises(ConfigError) as caught:
        ContentCredentials.from_settings(settings)
    assert str(bundle) in str(caught.value) and "delete it" in str(caught.value)
    assert bundle.read_bytes() != whole  # not silently replaced: the operator decides


def test_a_bundle_with_a_corrupted_certificate_is_a_config_error():
    settings = get_settings()
    ContentCredentials.from_settings(settings)
    bundle = settings.data_dir / BUNDLE_NAME
    whole = bytearray(bundle.read_bytes())
    body = whole.index(b"-----BEGIN CERTIFICATE-----") + len(b"-----BEGIN CERTIFICATE-----\n")
    whole[body + 40] = ord("*")  # not base64
    bundle.write_bytes(bytes(whole))
    with pytest.raises(ConfigError) as caught:
        ContentCredentials.from_settings(settings)
    assert str(bundle) in str(caught.value) and "damaged" in str(caught.value)


# --- hostile files --------------------------------------------------------------------------------------------------


def _bomb(side: int) -> bytes:
    """A real 1x1 PNG whose header claims side x side pixels (CRC fixed, so only the size gives it away)."""
    return rewrite_chunks(encode(Image.new("RGB", (1, 1))),
                          lambda kind, body: struct.pack(">II", side, side) + body[8:] if kind == b"IHDR" else None)


def hostile_corpus(credentials: ContentCredentials) -> dict[str, tuple[bytes, str]]:
    """Files no checker may crash on: each with what it must come to, a refusal ("refused: <fragment of the
    sentence>") or a read that is not intact ("read: <fragment of the verdict or problems>")."""
    unsigned = encode(noise(1))
    signed = credentials.sign(encode(noise(2)), "PNG", origin(), parameters=PARAMETERS)
    manifest = cabx(signed)
    flipped = bytearray(manifest)
    flipped[len(manifest) - 40] ^= 0xFF  # inside the COSE signature at the end of the JUMBF
    gif = encode(Image.new("P", (8, 8)), "GIF")
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    return {
        "empty": (b"", "refused: The file is empty."),
        "text": (b"hello, this is not an image\n" * 10, "refused: This file is not an image."),
        "svg": (svg, "refused: This file is an SVG drawing."),
        "gif": (gif, "refused: This file is a GIF image."),
        "nul bytes": (b"\0" * 4096, "refused: This file is not an image."),
        "truncated signed png": (signed[:len(signed) // 2], "refused: The image is damaged or incomplete."),
        "bomb": (_bomb(60000), "refused: The image is too large."),  # refused by Pillow's own guard
        "bomb under pillow's limit": (_bomb(8000), "refused: The image is too large (8000 x 8000 pixels)."),
        "over the size limit": (b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_BYTES + 1 - 8), "refused: larger than 10 MB"),
        "random caBX": (insert_after_ihdr(unsigned, b"caBX", os.urandom(2000)), "read: cannot be read"),
        "jumb header then garbage": (insert_after_ihdr(unsigned, b"caBX", struct.pack(">I", 2000) + b"jumb"
                                                       + os.urandom(1992)), "read: cannot be read"),
        "transplanted manifest": (insert_after_ihdr(encode(noise(3)), b"caBX", manifest),
                                  "read: assertion.dataHash.mismatch"),
        "flipped signature byte": (rewrite_chunks(signed, lambda kind, _b: bytes(flipped) if kind == b"caBX" else None),
                                   "read: claimSignature.mismatch"),
    }


HOSTILE = ["empty", "text", "svg", "gif", "nul bytes", "truncated signed png", "bomb", "bomb under pillow's limit",
           "over the size limit",
           "random caBX", "jumb header then garbage", "transplanted manifest", "flipped signature byte"]


@pytest.fixture(scope="module")
def corpus(credentials: ContentCredentials) -> dict[str, tuple[bytes, str]]:
    return hostile_corpus(credentials)


def test_the_hostile_list_is_the_corpus(corpus):
    assert sorted(corpus) == sorted(HOSTILE)


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_file_is_refused_in_a_sentence_or_read_as_not_intact(credentials, corpus, case):
    data, expected = corpus[case]
    outcome, fragment = expected.split(": ", 1)
    try:
        found = examine(credentials, data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    except InvalidImage as exc:
        message = str(exc)
        assert outcome == "refused", f"{case} was refused: {message}"
        assert fragment in message and message.endswith(".") and "\n" not in message
        return
    assert outcome == "read", f"{case} was read: {found}"
    assert isinstance(found, Inspection) and found.intact is False and found.own is False
    # An unreadable manifest comes back with has_credentials False but an error (the verdict says it is there).
    assert (found.has_credentials or found.error) and found.format == "PNG" and found.width == SIDE
    verdict = found.verdict()
    assert verdict.endswith(".") and "intact" not in verdict
    assert fragment in verdict or any(problem.startswith(fragment) for problem in found.problems), (verdict,
                                                                                                    found.problems)
    assert json.dumps(found.public())  # what the API and the CLI print


# --- rupali image inspect -------------------------------------------------------------------------------------------


def _inspect(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["image", "inspect", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_exits_0_only_for_intact_credentials(tmp_path, capsys):
    own = ContentCredentials.from_settings(get_settings())  # the installation's: what the command reads with
    signed = own.sign(encode(noise()), "PNG", origin(), parameters=PARAMETERS)
    (tmp_path / "signed.png").write_bytes(signed)
    (tmp_path / "unsigned.png").write_bytes(encode(noise()))
    (tmp_path / "tampered.png").write_bytes(tamper_pixel(signed))
    foreign = ContentCredentials(*make_self_signed_chain("Somebody Else"))
    (tmp_path / "foreign.jpg").write_bytes(foreign.sign(encode(noise(), "JPEG"), "JPEG", origin(xmp.ALGORITHMIC)))

    code, out, err = _inspect(capsys, str(tmp_path / "signed.png"))
    assert code == 0 and err == ""
    assert out.splitlines()[0].startswith("Content Credentials intact: signed by ")
    assert "software agent: Runware / flux-dev" in out and f"claim generator: Rupali {__version__}" in out

    code, out, _ = _inspect(capsys, str(tmp_path / "unsigned.png"))
    assert code == 1 and out.startswith("No Content Credentials")

    code, out, _ = _inspect(capsys, str(tmp_path / "tampered.png"))
    assert code == 1 and "do not match the file" in out and "assertion.dataHash.mismatch" in out

    code, out, _ = _inspect(capsys, "--json", str(tmp_path / "foreign.jpg"))  # intact, but not signed by us
    body = json.loads(out)
    assert code == 0 and body["intact"] is True and body["signed_by_this_installation"] is False
    assert body["ai_generated"] is False and body["digital_source_type"] == xmp.ALGORITHMIC


def test_inspect_json_is_the_public_inspection(tmp_path, capsys):
    own = ContentCredentials.from_settings(get_settings())
    path = tmp_path / "signed.webp"
    path.write_bytes(own.sign(encode(noise(), "WEBP"), "WEBP", origin(), width=SIDE, height=SIDE))
    code, out, err = _inspect(capsys, str(path), "--json")
    body = json.loads(out)
    assert code == 0 and err == ""
    assert body["intact"] is True and body["signed_by_this_installation"] is True and body["ai_generated"] is True
    assert (body["format"], body["width"], body["height"]) == ("WEBP", SIDE, SIDE)
    assert body["signed_at"] == MADE_AT.astimezone(UTC).isoformat()
    assert body["verdict"].startswith("Content Credentials intact")


@pytest.mark.parametrize("case", ["text file", "missing", "directory", "gif"])
def test_inspect_refuses_what_it_cannot_check_in_one_line(tmp_path, capsys, case):
    path = tmp_path / {"text file": "notes.txt", "missing": "nowhere.png", "directory": "folder",
                       "gif": "anim.gif"}[case]
    if case == "text file":
        path.write_text("just some notes\n")
    elif case == "directory":
        path.mkdir()
    elif case == "gif":
        path.write_bytes(encode(Image.new("P", (8, 8)), "GIF"))
    code, out, err = _inspect(capsys, str(path))
    assert code != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rupali: ") and str(path) in lines[0], err
    assert "Traceback" not in err
    expected = {"text file": "This file is not an image.", "missing": "cannot read", "directory": "cannot read",
                "gif": "This file is a GIF image."}[case]
    assert expected in lines[0]


def test_production_on_the_self_made_certificate_warns_and_an_own_one_does_not(tmp_path, caplog):
    safe = {"env": "production", "data_dir": tmp_path / "data", "public_url": "https://images.example",
            "operator_name": "Studio Nord GmbH", "operator_address": "Kiel", "operator_email": "hi@example.de",
            "smtp_host": "127.0.0.1"}
    Runtime.build(Settings(**safe))
    warned = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert any("self-made certificate" in message and "RUPALI_C2PA_CERTIFICATE" in message for message in warned)
    caplog.clear()
    chain, key = make_self_signed_chain("Studio Nord GmbH")
    (tmp_path / "chain.pem").write_bytes(chain)
    (tmp_path / "key.pem").write_bytes(key)
    Runtime.build(Settings(**safe, c2pa_certificate=tmp_path / "chain.pem", c2pa_private_key=tmp_path / "key.pem"))
    assert not any("self-made" in record.getMessage() for record in caplog.records)
    caplog.clear()
    Runtime.build(Settings(data_dir=tmp_path / "development"))  # development: no warning, the policy says it
    assert not any("self-made" in record.getMessage() for record in caplog.records)


# --- who signed, and certificates that expire ----------------------------------------------------------------------


def ec_family(*lifetimes: timedelta, start: datetime | None = None) -> list[tuple[bytes, bytes]]:
    """One EC root and a leaf it issued for each lifetime, as (chain PEM, key PEM) pairs."""
    start = start or datetime.now(UTC) - timedelta(days=1)
    pem = serialization.Encoding.PEM

    def usage(*, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                             encipher_only=False, decipher_only=False)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    root = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Shared Authority")])
    ca = (x509.CertificateBuilder().subject_name(root).issuer_name(root).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start)
          .not_valid_after(start + timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(ca=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    family = []
    for number, lifetime in enumerate(lifetimes):
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Customer {number} signing")]))
                .issuer_name(root).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(datetime.now(UTC) + lifetime)
                .add_extension(usage(ca=False), critical=True)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
                .sign(ca_key, hashes.SHA256()))
        family.append((leaf.public_bytes(pem) + ca.public_bytes(pem),
                       key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())))
    return family


def test_another_customer_of_the_same_authority_is_not_this_installation():
    ours, theirs = ec_family(timedelta(days=30), timedelta(days=30))
    installation, stranger = ContentCredentials(*ours), ContentCredentials(*theirs)
    found = installation.inspect(stranger.sign(encode(noise()), "PNG", origin()), "PNG")
    assert found.state == "Trusted" and found.intact  # the authority is trusted: the chain checks out
    assert found.own is False and found.signer == "Customer 1 signing"
    assert found.verdict() == ("Content Credentials intact: signed by “Customer 1 signing”, an identity this "
                               "installation cannot confirm.")
    # A self-signed look-alike with our signer's very name is not ours either.
    forged = ContentCredentials(*make_self_signed_chain("Test Operator"))
    ours_by_name = ContentCredentials(*make_self_signed_chain("Test Operator"))
    lookalike = ours_by_name.inspect(forged.sign(encode(noise()), "PNG", origin()), "PNG")
    assert lookalike.signer == ours_by_name.signer_name and lookalike.own is False
    assert "cannot confirm" in lookalike.verdict()


def test_an_expired_certificate_is_refused_at_start_in_one_line():
    [expired] = ec_family(timedelta(seconds=-60))
    with pytest.raises(ConfigError, match=r"^the Content Credentials certificate expired on \d{4}-\d\d-\d\d$"):
        ContentCredentials(*expired)


def test_a_certificate_that_expired_after_signing_is_not_reported_as_a_changed_file():
    """The native library checks certificates against the real clock, so this one waits for a short-lived
    certificate to run out (about two seconds) instead of travelling in time."""
    [short] = ec_family(timedelta(seconds=2))
    signer = ContentCredentials(*short)
    signed = signer.sign(encode(noise()), "PNG", origin())
    assert signer.inspect(signed, "PNG").own
    deadline = signer.valid_until + timedelta(seconds=1.5)
    while datetime.now(UTC) < deadline:
        time.sleep(0.1)
    found = signer.inspect(signed, "PNG")
    assert found.intact is True and found.credential_problems, found.problems
    assert found.verdict().startswith("Content Credentials intact (signed by ")
    assert "no longer vouches for it" in found.verdict()
    with pytest.raises(SigningUnavailable):  # and no new image leaves unsigned
        signer.sign(encode(noise()), "PNG", origin())


def test_the_inspect_command_needs_no_key_and_makes_nothing(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    configure(monkeypatch, RUPALI_DATA_DIR=data)
    path = tmp_path / "plain.png"
    path.write_bytes(encode(noise()))
    code, _, _ = _inspect(capsys, str(path))
    assert code == 1 and not (data / BUNDLE_NAME).exists()


def test_two_checks_at_once_is_the_most_and_the_third_is_told_to_come_back(credentials, monkeypatch):
    monkeypatch.setattr(provenance, "CHECK_WAIT", 0.05)
    data = credentials.sign(encode(noise()), "PNG", origin())
    taken = [provenance._CHECKS.acquire(timeout=1) for _ in range(2)]
    try:
        assert taken == [True, True]
        with pytest.raises(ChecksBusy, match="try again in a moment"):
            examine(credentials, data, max_bytes=10 * 2**20, max_pixels=40_000_000)
    finally:
        for _ in taken:
            provenance._CHECKS.release()
    assert examine(credentials, data, max_bytes=10 * 2**20, max_pixels=40_000_000).intact


def test_a_check_never_decodes_the_pixels(credentials, monkeypatch):
    """A tiny file can describe a huge plain image; the check reads headers and structure, and C2PA hashes bytes."""
    huge = encode(Image.new("RGB", (6000, 6000), (10, 20, 30)), "WEBP", lossless=True)
    assert len(huge) < 100_000

    def refuse(*_args, **_kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    found = examine(credentials, huge, max_bytes=10 * 2**20, max_pixels=40_000_000)
    assert (found.format, found.width, found.height, found.has_credentials) == ("WEBP", 6000, 6000, False)
