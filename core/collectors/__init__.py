"""Market-data collectors behind one protocol, chosen by name (``Settings.source``)."""

from __future__ import annotations

from core.collectors.base import Collector, FetchResult, RetryableCollectorError
from core.config import Settings

__all__ = ["Collector", "FetchResult", "RetryableCollectorError", "make_collector"]


def make_collector(settings: Settings) -> Collector:
    """The collector named by ``settings.source``, configured from settings."""
    if settings.source == "local":
        from core.collectors.local import LocalCollector

        assert settings.source_path is not None  # enforced by Settings
        return LocalCollector(settings.source_path)
    if settings.source == "synthetic":
        from core.collectors.synthetic import SyntheticCollector

        return SyntheticCollector(
            seed=settings.synthetic.seed, start_price=settings.synthetic.start_price
        )
    from core.collectors.yahoo import YFinanceCollector

    return YFinanceCollector(
        timeout=settings.collect.yfinance_timeout, threads=settings.collect.yfinance_threads
    )
