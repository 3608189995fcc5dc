"""One power action on many nodes: a bounded pool of workers, a per-node timeout, progress as it
goes, and the results in the order the nodes were given.

A node whose action is still running at its deadline is reported as timed out at once (its worker
finishes in the background: ipmitool is killed by its own timeout, pyghmi and requests give up on
theirs), so one dead BMC never holds up the summary.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.power.base import Action, Driver, PowerError, Result, Target, driver_class

log = logging.getLogger(__name__)
Progress = Callable[[int, int, int], None]  # done, failed, total


@dataclass(frozen=True)
class RunOptions:
    concurrency: int = 64
    timeout: float = 10.0  # per node
    ipmi_client: str = "pyghmi"  # or "ipmitool"
    ipmi_cipher_suite: int = 3
    redfish_verify_tls: bool = True
    wol_port: int = 9


def _drivers(targets: list[Target], options: RunOptions) -> dict[str, Driver]:
    drivers: dict[str, Driver] = {}
    for method in sorted({t.method for t in targets}):
        name = "ipmitool" if method == "ipmi" and options.ipmi_client == "ipmitool" else method
        extra = {
            "ipmitool": {"cipher_suite": options.ipmi_cipher_suite},
            "redfish": {"verify_tls": options.redfish_verify_tls},
            "wol": {"port": options.wol_port},
        }.get(name, {})
        drivers[method] = driver_class(name)(options.timeout, **extra)
    return drivers


def run_one(driver: Driver, target: Target, action: Action) -> Result:
    start = time.monotonic()
    try:
        power, message = driver.act(target, action)
    except PowerError as exc:
        return Result(
            target.node, target.method, action, False, "", target.redact(str(exc)), time.monotonic() - start
        )
    return Result(
        target.node, target.method, action, True, power, target.redact(message), time.monotonic() - start
    )


def run_all(
    targets: list[Target], action: Action, options: RunOptions, on_progress: Progress | None = None
) -> list[Result]:
    """Do `action` on every target, at most `options.concurrency` at a time."""
    drivers = _drivers(targets, options)
    results: dict[str, Result] = {}
    started: dict[str, float] = {}
    failed = 0

    def task(target: Target) -> Result:
        started[target.node] = time.monotonic()
        return run_one(drivers[target.method], target, action)

    pool = cf.ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="power")
    try:
        pending = {pool.submit(task, t): t for t in targets}
        while pending:
            done, _ = cf.wait(pending, timeout=0.1, return_when=cf.FIRST_COMPLETED)
            now = time.monotonic()
            for future in done:
                target = pending.pop(future)
                result = future.result()
                results[target.node] = result
                failed += not result.ok
            timed_out = False
            for future, target in list(pending.items()):
                begun = started.get(target.node)
                if begun is not None and now - begun > options.timeout + 1.0:
                    pending.pop(future)
                    future.cancel()
                    results[target.node] = Result(
                        target.node,
                        target.method,
                        action,
                        False,
                        "",
                        f"no answer within {options.timeout:.0f} s",
                        now - begun,
                    )
                    failed += 1
                    timed_out = True
            if on_progress is not None and (done or timed_out):
                on_progress(len(results), failed, len(targets))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        for driver in drivers.values():
            driver.close()
    for result in results.values():
        if not result.ok:
            log.debug("power %s %s: %s", action, result.node, result.message)
    return [results[t.node] for t in targets]
