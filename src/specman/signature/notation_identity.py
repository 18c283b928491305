"""Trusted identities of notation's trust policy: ``x509.subject`` distinguished names and how a certificate matches.

Notation (notation-go ``internal/pkix``) reads an identity with go-ldap's ``ParseDN`` into ``{type: value}``
(specman upper-cases the types; ``S`` is taken as ``ST``), requires ``C``, ``ST`` and ``O``, refuses multi-valued
RDNs, duplicate types and ``=#`` hex values, and matches a signing certificate when every attribute of the identity
has the same value in the certificate's subject (``IsSubsetDN``), the subject's types named as Go's
``pkix.Name.String()`` names them.

The DN is split here by hand: ``cryptography``'s ``Name.from_rfc4514_string`` rejects the space after each comma
and attribute types such as ``E`` that notation's documented policies use, and notation trims that whitespace. The
splitter honours RFC 4514 escapes (``\\,`` ``\\;`` ``\\+`` ``\\\\`` ``\\<hex><hex>``, escaped leading/trailing
spaces). Errors are :class:`ValueError` with a one-line reason; the policy module words them for the user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["certificate_subject_attributes", "identity_matches", "parse_distinguished_name"]

# Attribute names as Go's pkix.Name.String() writes them (what notation compares identities against).
_OID_NAMES = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
    NameOID.POSTAL_CODE: "POSTALCODE",
    NameOID.STREET_ADDRESS: "STREET",
}


def parse_distinguished_name(text: str) -> dict[str, str]:
    """``{type: value}`` of an RFC 4514 DN as notation reads identities (types upper-cased, ``S`` → ``ST``).

    Raises :class:`ValueError` with a one-line reason for an empty, multi-valued, duplicated or incomplete DN.
    """
    if "=#" in text:
        raise ValueError("hex-encoded values ('=#') are not supported")
    result: dict[str, str] = {}
    for rdn in _split_rdns(text):
        attr, value = rdn
        attr = attr.upper()
        attr = "ST" if attr == "S" else attr
        if not attr or not value:
            raise ValueError("every RDN needs a type and a value (TYPE=value)")
        if attr in result:
            raise ValueError(f"attribute {attr} appears twice")
        result[attr] = value
    for mandatory in ("C", "ST", "O"):
        if mandatory not in result:
            raise ValueError("a DN must contain C, ST (or S) and O")
    return result


def _split_rdns(text: str) -> list[tuple[str, str]]:
    rdns: list[tuple[str, str]] = []
    chars: list[tuple[str, bool]] = []
    attr: str | None = None
    index = 0
    while index <= len(text):
        char = text[index] if index < len(text) else ","
        index += 1
        if char == "\\":
            decoded, index = _unescape(text, index)
            chars.extend((c, True) for c in decoded)
        elif char == "=" and attr is None:
            attr, chars = _strip(chars), []
        elif char in ",;":
            if attr is None:
                raise ValueError("an RDN has no '='")
            rdns.append((attr, _strip(chars)))
            attr, chars = None, []
        elif char == "+":
            raise ValueError("multi-valued RDNs ('+') are not supported")
        else:
            chars.append((char, False))
    return rdns


def _unescape(text: str, index: int) -> tuple[str, int]:
    pair = text[index : index + 2]
    if re.fullmatch(r"[0-9A-Fa-f]{2}", pair):
        raw = bytearray()
        while re.fullmatch(r"[0-9A-Fa-f]{2}", text[index : index + 2]):
            raw.append(int(text[index : index + 2], 16))
            index += 2
            if text[index : index + 1] != "\\" or not re.fullmatch(r"[0-9A-Fa-f]{2}", text[index + 1 : index + 3]):
                break
            index += 1
        try:
            return raw.decode("utf-8"), index
        except UnicodeDecodeError:
            raise ValueError("an escaped value is not UTF-8") from None
    if not pair:
        raise ValueError("the DN ends with a lone backslash")
    return pair[0], index + 1


def _strip(chars: list[tuple[str, bool]]) -> str:
    start, end = 0, len(chars)
    while start < end and chars[start] == (" ", False):
        start += 1
    while end > start and chars[end - 1] == (" ", False):
        end -= 1
    return "".join(char for char, _ in chars[start:end])


def certificate_subject_attributes(certificate: x509.Certificate) -> dict[str, str] | None:
    """``{type: value}`` of a certificate's subject as notation compares it, or ``None`` if a type repeats."""
    result: dict[str, str] = {}
    for attribute in certificate.subject:
        key = _OID_NAMES.get(attribute.oid, attribute.oid.dotted_string)
        if key in result:
            return None
        value = attribute.value
        result[key] = value if isinstance(value, str) else value.hex()
    return result


def identity_matches(identity: Mapping[str, str], subject: Mapping[str, str]) -> bool:
    """Whether every attribute of ``identity`` has the same value in ``subject`` (notation's ``IsSubsetDN``)."""
    return all(subject.get(key) == value for key, value in identity.items())
