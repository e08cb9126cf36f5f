"""The HTTP forecast service: read-only, over ``core.forecasts``; ``python -m service``."""
