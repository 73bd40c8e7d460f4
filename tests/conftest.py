"""Shared test configuration: hypothesis profiles and small helpers."""

import os

from hypothesis import HealthCheck, settings

# Gradient tests ask for >= 100 examples each; "ci" keeps them and never times out.
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")
