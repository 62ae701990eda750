"""Kopf handlers: one startup handler for settings, one per-object loop at spec.interval.

Handlers stay thin: the work is in reconcile.Reconciler, and the loop in rounds.run_rounds.
Each ForecastScaler gets a Kopf daemon (a per-object timer whose period is read from the live
spec every round), so objects with different intervals each keep their own cadence, and a spec
change takes effect at the next round without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from kubernetes import client, config

from forecastscaler.core.api import GROUP, PLURAL, VERSION
from forecastscaler.operator.kube import Kube, load_credentials
from forecastscaler.operator.reconcile import ObjectState, Reconciler, Services
from forecastscaler.operator.rounds import run_rounds
from forecastscaler.operator.settings import OperatorConfig

log = logging.getLogger("forecastscaler")


def _post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    # Kubernetes caps event messages at 1 KiB; Kopf queues and posts them in the background.
    kopf.event(dict(body), type=type_, reason=reason, message=message[:1000])  # type: ignore[arg-type]


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    """Kopf and the operator's own client share one set of credentials, read at run time
    (kopf.login_via_client would use a KUBECONFIG path frozen when the client was imported)."""
    try:
        cfg = load_credentials()
    except (config.ConfigException, OSError, TypeError) as exc:
        raise kopf.LoginError(
            f"no Kubernetes credentials (in-cluster or KUBECONFIG): {exc}"
        ) from exc
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme = parts[0] if len(parts) == 2 else None
    token = parts[-1] if parts else None
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        username=cfg.username or None,
        password=cfg.password or None,
        scheme=scheme,
        token=token,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        trust_env=settings.networking.trust_env,
    )


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
    # New objects' first fits queue here, not in front of every other object's sync.
    warmup = ThreadPoolExecutor(
        max_workers=max(1, cfg.fit_workers // 2), thread_name_prefix="warmup"
    )
    api = client.ApiClient(await asyncio.to_thread(load_credentials))
    services = Services(kube=Kube(api), config=cfg, pool=pool, emit=_post_event, warmup_pool=warmup)
    if cfg.metrics_port:
        services.metrics.serve(cfg.metrics_port)
    memo["services"] = services
    memo["reconciler"] = Reconciler(services)
    log.info(
        "forecastscaler started: prometheus %s, %d fit workers, metrics %s",
        cfg.prometheus_url,
        cfg.fit_workers,
        f":{cfg.metrics_port}/metrics" if cfg.metrics_port else "off",
    )


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    services: Services | None = memo.get("services")
    if services is not None:
        services.metrics.close()
        for pool in (services.pool, services.warmup_pool, services.kube_io, services.metrics_io):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def autoscale(
    stopped: kopf.DaemonStopped,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    """Sync this ForecastScaler every spec.interval, start to start, until it is deleted
    (rounds.run_rounds: the first rounds and refits spread by the object's uid)."""
    reconciler: Reconciler = memo["reconciler"]
    meta = body.get("metadata", {})

    def sync(state: ObjectState) -> Awaitable[float]:
        return reconciler.sync(body, state, logger)

    await run_rounds(
        sync,
        uid=meta.get("uid") or str(id(body)),
        clock=asyncio.get_running_loop().time,
        sleep=stopped.wait,
        stopped=lambda: bool(stopped),
        logger=logger,
    )
    reconciler.s.metrics.forget(meta.get("namespace", ""), meta.get("name", ""))
