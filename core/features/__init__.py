"""Feature transforms: named groups of Polars expressions over the (symbol, date) panel.

- ``context``: windows, the rolling mode, safe arithmetic, ``FeatureGroup``;
- ``seed``, ``alpha158``, ``risk``: one module per group; ``market``: the universe's series;
- ``registry``: the groups by name, feature names, warm-up, the code version;
- ``build``: the one lazy query; ``schema``: the output contract;
- ``table``: the feature table in the store (parts, manifest, fingerprint).
"""
