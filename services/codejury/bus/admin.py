"""Broker administration: wait for a broker to answer, create topics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from codejury.bus.errors import BrokerUnavailableError
from codejury.core.logging import get_logger
from codejury.core.settings import BusSettings

log = get_logger(__name__)


def unavailable(settings: BusSettings, exc: BaseException | None = None) -> BrokerUnavailableError:
    detail = f" ({exc})" if exc else ""
    return BrokerUnavailableError(
        f"no Kafka broker answered at {settings.bootstrap_servers} within "
        f"{settings.connect_timeout_s:g}s{detail}: start one with `codejury broker` or set "
        "CODEJURY_BUS__BOOTSTRAP_SERVERS",
        delay_s=1.0,
    )


def security_options(settings: BusSettings) -> dict[str, Any]:
    """kafka-python's security arguments for ``settings`` (every client takes them)."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_check_hostname"] = True
        if settings.ssl_cafile is not None:
            options["ssl_cafile"] = str(settings.ssl_cafile)
        if settings.ssl_certfile is not None and settings.ssl_keyfile is not None:
            options["ssl_certfile"] = str(settings.ssl_certfile)
            options["ssl_keyfile"] = str(settings.ssl_keyfile)
    if settings.sasl_mechanism is not None and settings.sasl_password is not None:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return options


def admin_client(settings: BusSettings) -> KafkaAdminClient:
    """An admin client, or BrokerUnavailableError after ``connect_timeout_s``."""
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=f"{settings.client_id}-admin",
            request_timeout_ms=settings.request_timeout_ms,
            bootstrap_timeout_ms=max(1000, int(settings.connect_timeout_s * 1000)),
            **security_options(settings),
        )
    except (KafkaError, OSError) as exc:
        raise unavailable(settings, exc) from exc


def ensure_topics(settings: BusSettings, topics: Iterable[str]) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        created: list[str] = []
        for topic in missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            topic, num_partitions=settings.topic_partitions, replication_factor=1
                        )
                    ]
                )
                created.append(topic)
            except TopicAlreadyExistsError:
                pass  # created by a peer between list and create
        if created:
            log.info("topics.created", topics=created, partitions=settings.topic_partitions)
        return created
    except KafkaError as exc:
        raise unavailable(settings, exc) from exc
    finally:
        admin.close()
