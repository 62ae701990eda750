"""Kopf handlers: one startup handler for settings, one per-object loop at spec.interval.

Handlers stay thin: the work is in reconcile.Reconciler. Each ForecastScaler gets a Kopf daemon
(a per-object timer whose period is read from the live spec every round), so objects with
different intervals each keep their own cadence, and a spec change takes effect at the next
round without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from kubernetes import client, config

from forecastscaler.operator.api import GROUP, PLURAL, VERSION
from forecastscaler.operator.kube import Kube
from forecastscaler.operator.reconcile import ObjectState, Reconciler, Services
from forecastscaler.operator.settings import OperatorConfig

log = logging.getLogger("forecastscaler")


def _post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    # Kubernetes caps event messages at 1 KiB; Kopf queues and posts them in the background.
    kopf.event(dict(body), type=type_, reason=reason, message=message[:1000])  # type: ignore[arg-type]


def _api_client() -> client.ApiClient:
    """In-cluster credentials when running in a pod, else KUBECONFIG (read now, not at import)."""
    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException:
        pass
    try:
        api: client.ApiClient = config.new_client_from_config(
            config_file=os.environ.get("KUBECONFIG")
        )
        return api
    except (config.ConfigException, OSError) as exc:
        raise kopf.PermanentError(f"no Kubernetes credentials: {exc}") from exc


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account when in a pod, else KUBECONFIG as the environment says now."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """All Kopf settings in one place, and the collaborators every sync shares."""
    cfg: OperatorConfig = memo.get("config") or OperatorConfig.from_env()
    # Keep Kopf's bookkeeping in annotations under our group, not in .status.kopf.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Kopf needs a finalizer to stop each object's loop cleanly; name it after our group.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.level = logging.INFO  # our explicit kopf.event() calls
    settings.posting.loggers = False  # but not every log line
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.execution.max_workers = 4

    pool = ThreadPoolExecutor(max_workers=cfg.fit_workers, thread_name_prefix="fit")
    services = Services(kube=Kube(_api_client()), config=cfg, pool=pool, emit=_post_event)
    memo["services"] = services
    memo["reconciler"] = Reconciler(services)
    log.info(
        "forecastscaler started: prometheus %s, %d fit workers", cfg.prometheus_url, cfg.fit_workers
    )


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    services: Services | None = memo.get("services")
    if services is not None:
        services.pool.shutdown(wait=False, cancel_futures=True)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def autoscale(
    stopped: kopf.DaemonStopped,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    """Sync this ForecastScaler every spec.interval until it is deleted."""
    reconciler: Reconciler = memo["reconciler"]
    state = ObjectState()
    while not stopped:
        try:
            interval = await reconciler.sync(body, state, logger)
        except asyncio.CancelledError:
            raise
        except Exception:  # keep serving: the next round may succeed
            logger.exception("sync failed")
            interval = 30.0
        await stopped.wait(interval)
