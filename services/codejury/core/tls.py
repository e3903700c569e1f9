"""gRPC credentials from ``TlsSettings``: what every CodeJury server listens with and
every client connects with. Files are read once, when a server or channel is made; a
missing or half-configured pair is a ``ConfigurationError`` naming the setting."""

from __future__ import annotations

from pathlib import Path

import grpc

from codejury.core.errors import ConfigurationError
from codejury.core.settings import TlsSettings


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"tls.{setting}={path}: cannot be read ({exc.strerror}): mount the certificate "
            f"there or unset CODEJURY_TLS__{setting.upper()}"
        ) from exc


def _pair(tls: TlsSettings) -> tuple[bytes, bytes] | None:
    if (tls.cert_file is None) != (tls.key_file is None):
        missing = "key_file" if tls.key_file is None else "cert_file"
        raise ConfigurationError(
            f"tls.{missing} is unset while its pair is set: set both "
            "CODEJURY_TLS__CERT_FILE and CODEJURY_TLS__KEY_FILE, or neither"
        )
    if tls.cert_file is None or tls.key_file is None:
        return None
    return _read(tls.key_file, "key_file"), _read(tls.cert_file, "cert_file")


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials | None:
    """TLS (mTLS with ``client_auth``) for a server, or None for plain text."""
    pair = _pair(tls)
    if pair is None:
        if tls.client_auth:
            raise ConfigurationError(
                "tls.client_auth needs the server's own certificate: set "
                "CODEJURY_TLS__CERT_FILE and CODEJURY_TLS__KEY_FILE"
            )
        return None
    roots = None
    if tls.client_auth:
        if tls.ca_file is None:
            raise ConfigurationError(
                "tls.client_auth needs tls.ca_file, the CA that signs client certificates"
            )
        roots = _read(tls.ca_file, "ca_file")
    return grpc.ssl_server_credentials(
        [pair], root_certificates=roots, require_client_auth=tls.client_auth
    )


def channel_credentials(tls: TlsSettings) -> grpc.ChannelCredentials | None:
    """TLS for a client when ``ca_file`` is set (presenting this process's certificate
    when it has one), or None for plain text."""
    if tls.ca_file is None:
        return None
    return tls_channel_credentials(tls)


def tls_channel_credentials(tls: TlsSettings) -> grpc.ChannelCredentials:
    """TLS for a client that must speak it: the server verified with ``ca_file`` or, when
    unset, the system's roots; this process's certificate presented when it has one."""
    pair = _pair(tls)
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_file, "ca_file") if tls.ca_file else None,
        private_key=pair[0] if pair else None,
        certificate_chain=pair[1] if pair else None,
    )
