"""``specman sign`` and ``specman keygen``; ``VerifySettings`` (``sync``, ``serve``) and ``SignKeySettings`` (``push``,
``migrate``).

A signing key's passphrase comes from ``--key-password-file F``, else ``SPECMAN_SIGN_PASSWORD``, else a prompt on
the terminal — never from the command line.  An empty passphrase means an unencrypted key (as cosign's
``COSIGN_PASSWORD=""``).  The work itself is in ``specman.signature``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final

import click

from specman.cli.options import RegistrySettings
from specman.cli.settings import Settings, file_opt, opt, uses
from specman.cli.ui import UI
from specman.errors import UsageError
from specman.oci import open_target
from specman.signature.keys import PrivateKey, generate_key, load_private_key, load_public_keys
from specman.signature.notation import NotationError, NotationPolicy, load_notation_policy
from specman.signature.notation_form import notation_verifier
from specman.signature.policy import ExtraVerifier, Mode, Verifier, VerifyPolicy
from specman.signature.signing import sign_reference

__all__ = [
    "PASSWORD_ENV",
    "SignKeySettings",
    "VerifySettings",
    "keygen",
    "passphrase_reader",
    "read_signing_key",
    "sign",
]

PASSWORD_ENV: Final = "SPECMAN_SIGN_PASSWORD"  # noqa: S105 (a variable name, not a secret)


@dataclass(frozen=True)
class VerifySettings(Settings):
    """``--verify off|audit|required``, ``--verify-key FILE`` (repeatable), ``--verify-tags GLOB`` (repeatable)."""

    param: ClassVar[str] = "verify"

    verify_mode: str = opt(
        "--verify",
        type=click.Choice([m.value for m in Mode]),
        default="off",
        show_default=True,
        help="Check signatures before publishing: audit reports, required refuses unsigned or badly signed versions.",
    )
    verify_keys: tuple[Path, ...] = file_opt(
        "--verify-key",
        multiple=True,
        help="A trusted PEM public key (ECDSA, Ed25519, RSA); repeatable, any one key passes.",
    )
    verify_tags: tuple[str, ...] = opt(
        "--verify-tags",
        multiple=True,
        metavar="GLOB",
        help="Verify only the tags matching this glob (repeatable; default every tag).",
    )
    notation_policy: Path | None = opt(
        "--verify-notation-policy",
        type=click.Path(exists=True, path_type=Path),
        help="Also accept Notation signatures: notation's trustpolicy.json (or its config directory).",
    )
    notation_store: Path | None = opt(
        "--verify-notation-store",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Notation's trust store directory (holding x509/ca/<name>/...); default beside the trust policy.",
    )

    def policy(self) -> VerifyPolicy:
        """The policy (keys and trust policy loaded now: a bad file is a usage error before anything starts)."""
        mode = Mode(self.verify_mode)
        if mode is Mode.OFF and (self.verify_keys or self.verify_tags or self.notation_policy):
            raise UsageError("--verify-key/--verify-tags/--verify-notation-policy need --verify audit or required")
        extra: tuple[tuple[str, ExtraVerifier], ...] = ()
        if self.notation_policy is not None:
            extra = (("notation", notation_verifier(self._notation())),)
        elif self.notation_store is not None:
            raise UsageError("--verify-notation-store needs --verify-notation-policy")
        return VerifyPolicy(mode, load_public_keys(self.verify_keys), self.verify_tags, extra)

    def _notation(self) -> NotationPolicy:
        assert self.notation_policy is not None
        base = self.notation_policy if self.notation_policy.is_dir() else self.notation_policy.parent
        store = self.notation_store or (base / "truststore" if (base / "truststore").is_dir() else base)
        try:
            return load_notation_policy(self.notation_policy, store)
        except NotationError as exc:
            raise UsageError(f"--verify-notation-policy: {exc}") from None

    def verifier(self) -> Verifier | None:
        """One verifier for the life of the command (its results are kept by digest), None when off."""
        policy = self.policy()
        return Verifier(policy) if policy.enabled else None


@dataclass(frozen=True)
class SignKeySettings(Settings):
    """``--sign-key FILE`` and ``--key-password-file FILE`` for commands that sign what they push."""

    param: ClassVar[str] = "signing"

    sign_key: Path | None = file_opt(
        "--sign-key",
        help="Sign what is pushed with this PEM private key (cosign's .sig tag form).",
    )
    key_password_file: Path | None = file_opt(
        "--key-password-file",
        help=f"The key's passphrase (first line); else {PASSWORD_ENV}, else a prompt.",
    )

    def key(self) -> PrivateKey | None:
        return read_signing_key(self.sign_key, self.key_password_file) if self.sign_key else None


def passphrase_reader(password_file: Path | None, *, confirm: bool = False) -> Callable[[], bytes]:
    """A function returning the key passphrase: the file, ``SPECMAN_SIGN_PASSWORD``, or a terminal prompt."""

    def read() -> bytes:
        if password_file is not None:
            try:
                return password_file.read_bytes().rstrip(b"\r\n")
            except OSError as exc:
                raise UsageError(f"cannot read --key-password-file {password_file}: {exc.strerror}") from None
        if PASSWORD_ENV in os.environ:
            return os.environ[PASSWORD_ENV].encode()
        if not sys.stdin.isatty():
            raise UsageError(f"the key passphrase: give --key-password-file or set {PASSWORD_ENV} (no terminal)")
        text: str = click.prompt("Key passphrase", hide_input=True, confirmation_prompt=confirm, default="")
        return text.encode()

    return read


def read_signing_key(path: Path, password_file: Path | None) -> PrivateKey:
    return load_private_key(path, passphrase_reader(password_file))


_PASSWORD_FILE_OPTION = click.option(
    "--key-password-file",
    envvar="SPECMAN_KEY_PASSWORD_FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"The key's passphrase (first line); else {PASSWORD_ENV}, else a prompt.",
)


def _annotations(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise UsageError(f"-a {value!r}: expected KEY=VALUE")
        out[key] = text
    return out


@click.command()
@click.argument("ref")
@click.option(
    "--key",
    "key_file",
    required=True,
    envvar="SPECMAN_SIGN_KEY",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM private key (openssl EC/RSA/Ed25519, PKCS#8, encrypted or not).",
)
@_PASSWORD_FILE_OPTION
@click.option("--bundle", is_flag=True, help="Write a Sigstore bundle as an OCI 1.1 referrer instead of the .sig tag.")
@click.option("-a", "--annotation", "annotations", multiple=True, metavar="KEY=VALUE", help="Signed annotation.")
@uses(RegistrySettings)
@click.pass_obj
def sign(
    ui: UI,
    /,
    ref: str,
    key_file: Path,
    key_password_file: Path | None,
    bundle: bool,
    annotations: tuple[str, ...],
    registry: RegistrySettings,
) -> None:
    """Sign REF (HOST[:PORT]/NAME:TAG or @DIGEST) as cosign does; prints the signed digest."""
    notes = _annotations(annotations)
    if bundle and notes:
        raise UsageError("-a annotations are written in the .sig form only (not with --bundle)")
    key = read_signing_key(key_file, key_password_file)
    target = open_target(ref, registry.options())
    try:
        result = sign_reference(target.repository, target.ref, key, bundle=bundle, annotations=notes)
    finally:
        target.repository.close()
    ui.status(f"Signed {target.repository.display}@{result.digest} ({result.format}: {result.location})")
    ui.result(result.digest)


@click.command()
@click.option(
    "--output-prefix",
    default="specman",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Writes PREFIX.key (private, PKCS#8 PEM, mode 0600) and PREFIX.pub.",
)
@click.option(
    "--algorithm",
    type=click.Choice(["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-3072"]),
    default="ecdsa-p256",
    show_default=True,
)
@_PASSWORD_FILE_OPTION
@click.option("--force", is_flag=True, help="Replace existing key files.")
@click.pass_obj
def keygen(ui: UI, output_prefix: Path, algorithm: str, key_password_file: Path | None, force: bool) -> None:
    """Create a key pair for 'specman sign' (encrypted with a passphrase unless it is empty)."""
    private, public = (
        output_prefix.with_name(output_prefix.name + ".key"),
        output_prefix.with_name(output_prefix.name + ".pub"),
    )
    for path in (private, public):
        if path.exists() and not force:
            raise UsageError(f"{path} exists (use --force to replace it)")
    passphrase = passphrase_reader(key_password_file, confirm=True)()
    key = generate_key(algorithm)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.pem(passphrase or None))
    public.write_bytes(key.public.pem())
    ui.status(f"Private key written to {private}{'' if passphrase else ' (not encrypted)'}")
    ui.status(f"Public key written to {public} ({key.public.fingerprint})")
    ui.result(str(public))
