"""The HTTP layer: routing, signature analysis, conversion, solving, requests and responses."""
