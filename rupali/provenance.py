"""Content Credentials (C2PA): every generated image is signed as AI output (or procedural), and any file can be
checked.

One :class:`ContentCredentials` per process holds the signer and the reading context (both reusable and safe to
share between threads; the native library releases the GIL while it works). A manifest names Rupali and its
version, the provider and model as the software agent, and the IPTC digital source type, never the person: no
name, e-mail or id. The same source type is written as XMP first, so the signature covers it.

Keys: the operator's certificate chain and key (``RUPALI_C2PA_CERTIFICATE`` / ``RUPALI_C2PA_PRIVATE_KEY``), or,
when none is configured, a certificate the installation makes for itself under its own local CA at first start,
kept in ``<data_dir>/content_credentials.pem``. Without a timestamp authority a signature is only valid while the
signing certificate is, so the self-made one lasts 20 years.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from PIL import Image as PILImage

from rupali import __version__, imaging, xmp
from rupali.config import ConfigError, Settings, ensure_data_dir

log = logging.getLogger(__name__)
MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
BUNDLE_NAME = "content_credentials.pem"
CLAIM_GENERATOR = "Rupali"
_C2PA_CLAIM_SIGNING = ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.S)
# Codes a clean read reports as "failure" or "informational" although nothing is wrong with the file itself: an
# unknown signer is what the verdict's wording is for.
_NOT_A_DEFECT = {"signingCredential.untrusted", "signingCredential.ocsp.skipped"}
# Failures about the signer's certificate or time stamp (expired, revoked, unknown), not about the file's content.
_CREDENTIAL_CODES = ("signingCredential.", "timeStamp.", "claimSignature.outsideValidity")
AI_SOURCE_TYPES = {xmp.TRAINED, xmp.IPTC_TYPES + "compositeWithTrainedAlgorithmicMedia"}
_SOURCE_LABELS = {xmp.TRAINED: "AI-generated (trained algorithmic media)",
                  xmp.IPTC_TYPES + "compositeWithTrainedAlgorithmicMedia":
                      "Partly AI-generated (composite with trained algorithmic media)",
                  xmp.ALGORITHMIC: "Procedural (algorithmic media, no AI model)"}


@dataclass(frozen=True)
class Origin:
    """What made an image, as its manifest states it."""

    source_type: str  # an IPTC digital source type URI: xmp.TRAINED or xmp.ALGORITHMIC
    provider: str  # the provider's label, e.g. "Runware"
    model: str  # the model's label or id
    created_at: datetime
    prompt: str | None = None  # only in the variant that carries the prompt and settings
    negative_prompt: str | None = None
    seed: int | None = None
    parent: bytes | None = None  # image-to-image: the uploaded source image


@dataclass
class Inspection:
    """What a file says about where it came from, and whether that is intact."""

    format: str | None = None  # PNG, JPEG, WEBP
    width: int = 0
    height: int = 0
    has_credentials: bool = False
    state: str | None = None  # the C2PA validation state: Trusted, Valid or Invalid
    intact: bool = False  # signature and content hashes match: nothing was changed after signing
    own: bool = False  # signed with this installation's own signing certificate
    signer: str | None = None
    issuer: str | None = None
    signed_at: datetime | None = None  # a timestamp authority's time, else the time the manifest states
    claim_generator: str | None = None
    source_type: str | None = None  # from the manifest
    xmp_source_type: str | None = None  # from the file's XMP
    software_agent: str | None = None
    problems: list[str] = field(default_factory=list)  # what does not check out, changes and credentials alike
    credential_problems: list[str] = field(default_factory=list)  # expired, revoked, unknown: not a change
    error: str | None = None  # something claims to be a manifest but cannot be read at all

    @property
    def ai_generated(self) -> bool:
        return (self.source_type or self.xmp_source_type) in AI_SOURCE_TYPES

    @property
    def source_label(self) -> str | None:
        kind = self.source_type or self.xmp_source_type
        return None if kind is None else _SOURCE_LABELS.get(kind, kind)

    def verdict(self) -> str:
        """One sentence for people: whether the file changed, and how far the signer can be vouched for."""
        if self.error:
            return "This file carries Content Credentials that cannot be read: they are damaged or forged."
        if not self.has_credentials:
            if self.xmp_source_type:
                return (f"No Content Credentials. The file's XMP says: {self.source_label}. "
                        "Nothing signs that statement, so anyone could have written it.")
            return "No Content Credentials and no digital source type: this file says nothing about its origin."
        if not self.intact:
            return "Content Credentials are present but do not match the file: it was changed after signing."
        signer = self.signer or "an unnamed signer"
        if self.own:
            who = f"signed by {signer}, this installation's own certificate"
        else:
            who = f"signed by “{signer}”, an identity this installation cannot confirm"
        if self.credential_problems:
            return (f"Content Credentials intact ({who}), but the signing certificate no longer vouches for it: "
                    f"{'; '.join(self.credential_problems[:2])}.")
        return f"Content Credentials intact: {who}."

    def public(self) -> dict:
        """The inspection as JSON-ready data (the REST API and ``rupali image inspect``)."""
        return {
            "format": self.format, "width": self.width, "height": self.height,
            "content_credentials": self.has_credentials, "validation_state": self.state, "intact": self.intact,
            "signed_by_this_installation": self.own, "signer": self.signer, "issuer": self.issuer,
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
            "claim_generator": self.claim_generator, "digital_source_type": self.source_type,
            "xmp_digital_source_type": self.xmp_source_type, "software_agent": self.software_agent,
            "ai_generated": self.ai_generated, "problems": self.problems, "verdict": self.verdict(),
        }


class SigningUnavailable(Exception):
    """The signing key cannot sign now (an expired certificate, an unreachable timestamp authority): no image is
    to leave unsigned, so the job fails with this rather than as a damaged image."""


class Verifier:
    """Reads and validates anyone's file; knows this installation's own certificate (when there is one)."""

    def __init__(self, chain_pem: bytes | None = None) -> None:
        verify = {"remote_manifest_fetch": False, "ocsp_fetch": False}
        self._own_serial: str | None = None
        if chain_pem is None:
            self._context = c2pa.Context.from_dict({"verify": verify})
            return
        leaf, certificates = _leaf(chain_pem)
        self._own_serial = str(leaf.serial_number)
        # The chain's last certificate (its root, or the highest one given) anchors the check; "own" then means
        # the very signing certificate of this installation, not anyone else's from the same authority.
        self._context = c2pa.Context.from_dict({"trust": {"user_anchors": certificates[-1].decode("ascii")},
                                                "verify": verify})

    @classmethod
    def from_settings(cls, settings: Settings) -> Verifier:
        """The installation's verifier, without loading a key or making a certificate."""
        if settings.c2pa_certificate is not None:
            try:
                return cls(settings.c2pa_certificate.read_bytes())
            except OSError as exc:
                raise ConfigError(f"cannot read the Content Credentials certificate ({exc.strerror})") from None
        bundle = settings.data_dir / BUNDLE_NAME
        return cls(b"".join(_CERTIFICATE.findall(bundle.read_bytes())) or None) if bundle.exists() else cls()

    def inspect(self, data: bytes, image_format: str) -> Inspection:
        """Read and validate whatever provenance ``data`` carries. The caller has already checked that it is a real
        image of ``image_format`` within the size limits."""
        found = Inspection(format=image_format, xmp_source_type=xmp.source_type_in(data[:4 * 1024 * 1024]))
        try:
            reader = c2pa.Reader(MIME_TYPES.get(image_format, "image/png"), io.BytesIO(data), context=self._context)
        except c2pa.C2paError.ManifestNotFound:
            return found
        except c2pa.C2paError as exc:  # something claims to be a manifest, but cannot be read as one
            return _unreadable(found, exc)
        with reader:
            found.has_credentials = True
            try:
                manifest = reader.get_active_manifest() or {}
                found.state = reader.get_validation_state()
                results = reader.get_validation_results() or {}
            except (c2pa.C2paError, json.JSONDecodeError) as exc:
                return _unreadable(found, exc)
        failures = [item for item in (results.get("activeManifest") or {}).get("failure", [])
                    if isinstance(item, dict) and item.get("code") not in _NOT_A_DEFECT]
        for item in failures:
            line = _text(f"{item.get('code')}: {item.get('explanation', '')}".strip(": ")) or "unknown failure"
            found.problems.append(line)
            if str(item.get("code", "")).startswith(_CREDENTIAL_CODES):
                found.credential_problems.append(_text(item.get("explanation")) or line)
        # Intact: the file is what was signed. Credentials that expired or are unknown say nothing about changes.
        found.intact = found.state in ("Valid", "Trusted", "Invalid") and \
            len(found.credential_problems) == len(failures)
        signature = manifest.get("signature_info") or {}
        found.own = (found.state == "Trusted" and self._own_serial is not None
                     and str(signature.get("cert_serial_number")) == self._own_serial)
        found.signer = _text(signature.get("common_name"))
        found.issuer = _text(signature.get("issuer"))
        generators = manifest.get("claim_generator_info") or []
        if generators and isinstance(generators[0], dict):
            found.claim_generator = " ".join(filter(None, (_text(generators[0].get("name")),
                                                           _text(generators[0].get("version")))))
        action = _making_action(manifest)
        if action is not None:
            found.source_type = _text(action.get("digitalSourceType"))
            agent = action.get("softwareAgent")
            found.software_agent = _text(agent.get("name") if isinstance(agent, dict) else agent)
            found.signed_at = _time(signature.get("time")) or _time(action.get("when"))
        return found


class ContentCredentials:
    """Signs generated images and reads anyone's."""

    def __init__(self, chain_pem: bytes, key_pem: bytes, algorithm: str = "ES256", *, tsa_url: str | None = None,
                 self_made: bool = False) -> None:
        leaf, _ = _leaf(chain_pem)
        self.self_made = self_made
        self.tsa_url = tsa_url
        self.signer_name = _attribute(leaf.subject, NameOID.COMMON_NAME) or leaf.subject.rfc4514_string()
        self.organisation = _attribute(leaf.subject, NameOID.ORGANIZATION_NAME)
        self.valid_until = leaf.not_valid_after_utc
        if self.valid_until <= datetime.now(UTC):
            raise ConfigError(f"the Content Credentials certificate expired on {self.valid_until:%Y-%m-%d}")
        algorithm_value = getattr(c2pa.C2paSigningAlg, algorithm)
        try:
            self._signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(algorithm_value, chain_pem, key_pem, tsa_url))
            # The start-up proof signs without the timestamp authority: a key that does not match its certificate
            # fails here, and an unreachable authority does not stop the server from starting.
            proof = c2pa.Signer.from_info(c2pa.C2paSignerInfo(algorithm_value, chain_pem, key_pem, None))
        except c2pa.C2paError as exc:
            raise ConfigError(f"the Content Credentials key cannot sign: {_first_line(exc)}") from None
        self.verifier = Verifier(chain_pem)
        # No embedded thumbnail: for a 1024² image it would be a full-size re-encode (about 75 ms and +40 %).
        self._signing = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}},
                                                "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}})
        self._prove(proof)

    def _prove(self, proof: c2pa.Signer) -> None:
        probe = io.BytesIO()
        PILImage.new("RGB", (1, 1)).save(probe, "PNG")
        origin = Origin(xmp.ALGORITHMIC, CLAIM_GENERATOR, "start-up check", datetime.now(UTC))
        try:
            self._sign(probe.getvalue(), "PNG", origin, None, 1, 1, proof)
        except (ValueError, SigningUnavailable) as exc:
            raise ConfigError(f"the Content Credentials key and certificate cannot sign together ({exc})") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> ContentCredentials:
        if settings.c2pa_certificate is not None and settings.c2pa_private_key is not None:
            try:
                chain, key = settings.c2pa_certificate.read_bytes(), settings.c2pa_private_key.read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read the Content Credentials certificate or key ({exc.strerror})") from None
            return cls(chain, key, settings.c2pa_algorithm, tsa_url=settings.c2pa_tsa_url)
        chain, key = self_made_bundle(settings)
        try:
            return cls(chain, key, "ES256", tsa_url=settings.c2pa_tsa_url, self_made=True)
        except ConfigError as exc:
            raise ConfigError(f"{settings.data_dir.resolve() / BUNDLE_NAME}: {exc}; delete it to make a new signing "
                              "certificate") from None

    def inspect(self, data: bytes, image_format: str) -> Inspection:
        return self.verifier.inspect(data, image_format)

    # --- signing ---------------------------------------------------------------------------------------------

    def sign(self, data: bytes, image_format: str, origin: Origin, *, parameters: str | None = None,
             width: int = 0, height: int = 0) -> bytes:
        """The image with its XMP source type, the ``parameters`` text (PNG, unless None) and a signed manifest.

        Raises ValueError for a file that is not what ``image_format`` says, and :class:`SigningUnavailable` when
        the key cannot sign now.
        """
        return self._sign(data, image_format, origin, parameters, width, height, self._signer)

    def _sign(self, data: bytes, image_format: str, origin: Origin, parameters: str | None, width: int, height: int,
              signer: c2pa.Signer) -> bytes:
        mime = MIME_TYPES[image_format]
        if image_format == "PNG":
            marked = xmp.png(data, source_type=origin.source_type, parameters=parameters)
        elif image_format == "JPEG":
            marked = xmp.jpeg(data, source_type=origin.source_type)
        else:
            marked = xmp.webp(data, source_type=origin.source_type, width=width, height=height)
        builder = c2pa.Builder(self._manifest(origin, mime), context=self._signing)
        try:
            if origin.parent is not None:
                builder.add_ingredient({"title": "source image", "relationship": "parentOf", "label": "source"},
                                       _sniff_mime(origin.parent), io.BytesIO(origin.parent))
            signed = io.BytesIO()
            builder.sign(signer, mime, io.BytesIO(marked), signed)
        except c2pa.C2paError.Signature as exc:  # the certificate or the timestamp authority, not the image
            raise SigningUnavailable(_first_line(exc)) from None
        except c2pa.C2paError as exc:
            raise ValueError(f"cannot sign this {image_format}: {_first_line(exc)}") from None
        finally:
            builder.close()
        return signed.getvalue()

    def _manifest(self, origin: Origin, mime: str) -> dict:
        agent = {"name": f"{origin.provider} / {origin.model}"}
        details: dict[str, object] = {"provider": origin.provider, "model": origin.model}
        if origin.prompt is not None:
            details["prompt"] = origin.prompt
            if origin.negative_prompt:
                details["negative_prompt"] = origin.negative_prompt
            if origin.seed is not None:
                details["seed"] = origin.seed
        when = origin.created_at.astimezone(UTC).isoformat()
        if origin.parent is None:
            actions = [{"action": "c2pa.created", "digitalSourceType": origin.source_type, "softwareAgent": agent,
                        "when": when, "parameters": details}]
        else:
            # C2PA: a file made from a parent is "opened" from it, then edited by the model.
            actions = [{"action": "c2pa.opened", "parameters": {"ingredientIds": ["source"]}, "when": when},
                       {"action": "c2pa.edited", "digitalSourceType": origin.source_type, "softwareAgent": agent,
                        "when": when, "parameters": details}]
        return {"claim_generator_info": [{"name": CLAIM_GENERATOR, "version": __version__}],
                "title": f"rupali-image.{mime.split('/')[1]}", "format": mime,
                "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}]}


def _unreadable(found: Inspection, exc: BaseException) -> Inspection:
    found.has_credentials = True
    found.error = _first_line(exc)
    found.problems.append(f"The manifest cannot be read: {found.error}")
    return found


def self_made_bundle(settings: Settings) -> tuple[bytes, bytes]:
    """The installation's own signing chain and key, made on first use (``chain``, ``key``).

    Written to a temporary file and linked into place, so two processes starting at once both end up with the one
    that was linked first.
    """
    path = ensure_data_dir(settings) / BUNDLE_NAME
    if not path.exists():
        chain, key = make_self_signed_chain(settings.operator_name)
        temporary = path.with_name(f".{BUNDLE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + chain)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    bundle = path.read_bytes()
    key_match = re.search(rb"-----BEGIN PRIVATE KEY-----.+?-----END PRIVATE KEY-----\s*", bundle, re.S)
    chain = b"".join(_CERTIFICATE.findall(bundle))
    if key_match is None or not chain:
        raise ConfigError(f"{path} is damaged; delete it to make a new signing certificate")
    return chain, key_match.group(0)


def make_self_signed_chain(operator: str) -> tuple[bytes, bytes]:
    """A local root CA and a signing certificate it issued, in the profile C2PA validators accept (chain, key).

    Real time, not the travelling clock: validators check certificates against the real one.
    """
    start = datetime.now(UTC) - timedelta(days=1)
    organisation = operator[:64] or "Rupali"
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                         x509.NameAttribute(NameOID.COMMON_NAME, "Rupali installation root (not publicly trusted)")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start)
          .not_valid_after(start + timedelta(days=365 * 25))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(_key_usage(cert_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation[:40]} image signing")])
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    leaf = (x509.CertificateBuilder().subject_name(name).issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + timedelta(days=365 * 20))
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # emailProtection: the EKU every C2PA validator accepts by default (claim signing alone is not).
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, _C2PA_CLAIM_SIGNING]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return leaf.public_bytes(pem) + ca.public_bytes(pem), key_pem


def _leaf(chain_pem: bytes) -> tuple[x509.Certificate, list[bytes]]:
    """The signing certificate of a PEM chain, and every certificate's PEM; ConfigError when it cannot be read."""
    certificates = _CERTIFICATE.findall(chain_pem)
    if not certificates:
        raise ConfigError("the Content Credentials certificate file holds no PEM certificate")
    try:
        return x509.load_pem_x509_certificate(certificates[0]), certificates
    except ValueError:
        raise ConfigError("the Content Credentials certificate cannot be read: the PEM data is damaged") from None


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
                         encipher_only=False, decipher_only=False)


def _attribute(name: x509.Name, oid: ObjectIdentifier) -> str | None:
    found = name.get_attributes_for_oid(oid)
    return str(found[0].value) if found else None


def _making_action(manifest: dict) -> dict | None:
    """The action that says how the content came to be: c2pa.created, or c2pa.edited with a source type."""
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        actions = [a for a in ((assertion.get("data") or {}).get("actions") or []) if isinstance(a, dict)]
        for action in actions:
            if action.get("digitalSourceType"):
                return action
        if actions:
            return actions[0]
    return None


def _sniff_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "image/webp"


def _text(value: object) -> str | None:
    """A manifest field as printable text of sensible length (manifests of uploaded files are hostile input)."""
    if value is None:
        return None
    text = "".join(ch for ch in str(value) if ch.isprintable())[:200]
    return text or None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _first_line(exc: BaseException) -> str:
    return (_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) or "unknown error")[:200]


class ChecksBusy(imaging.InvalidImage):
    """Too many files are being checked at once; the caller should try again shortly."""


# Checks at once, in the whole process: each hashes up to the upload limit, and anyone may ask for one.
_CHECKS = threading.BoundedSemaphore(2)
CHECK_WAIT = 10.0  # seconds a check waits for its turn before the answer is "try again"


def examine(credentials: ContentCredentials | Verifier, data: bytes, *, max_bytes: int, max_pixels: int
            ) -> Inspection:
    """Check an uploaded file: a real PNG, JPEG or WebP within the upload limits, then its provenance.

    Raises :class:`rupali.imaging.InvalidImage` with a sentence for people (:class:`ChecksBusy` when the server
    is already checking as many files as it will at once). Works on ``data`` in memory only.
    """
    kind, width, height = imaging.identify_untrusted(data, max_bytes=max_bytes, max_pixels=max_pixels)
    if not _CHECKS.acquire(timeout=CHECK_WAIT):
        raise ChecksBusy("Many images are being checked right now. Please try again in a moment.")
    try:
        found = credentials.inspect(data, kind)
    except Exception:  # the native reader failing in a way it does not document: still an answer, never a 500
        log.exception("reading Content Credentials failed")
        found = Inspection(format=kind, has_credentials=True, error="the reader failed on this file")
        found.problems.append("The manifest cannot be read.")
    finally:
        _CHECKS.release()
    found.width, found.height = width, height
    return found


def origin_label(source_type: str) -> str:
    """What people are told an image is: AI output, or a procedural sketch (the offline generator)."""
    return "Procedural sketch" if source_type == xmp.ALGORITHMIC else "AI-generated"


@dataclass(frozen=True)
class Signing:
    """Who signs this installation's images, as the legal pages state it."""

    signer: str
    organisation: str | None
    self_made: bool
    valid_until: datetime
    tsa_url: str | None


def signing(settings: Settings) -> Signing:
    """The signing identity the code uses, read from the same certificate (no key is loaded)."""
    if settings.c2pa_certificate is not None:
        try:
            chain = settings.c2pa_certificate.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the Content Credentials certificate ({exc.strerror})") from None
        self_made = False
    else:
        chain, _key = self_made_bundle(settings)
        self_made = True
    leaf, _ = _leaf(chain)
    return Signing(_attribute(leaf.subject, NameOID.COMMON_NAME) or leaf.subject.rfc4514_string(),
                   _attribute(leaf.subject, NameOID.ORGANIZATION_NAME), self_made, leaf.not_valid_after_utc,
                   settings.c2pa_tsa_url)
