"""Shared test configuration: hypothesis profiles and the tolerance report.

Profiles (every property test takes its example count from the profile, never from its
own decorator, so one switch scales them all):

- ``dev`` (default): 100 fresh random examples per property test on every run.
- ``ci`` (loaded when the environment variable ``CI`` is ``true``): the same 100 examples
  on every run (derandomized, no example database), and on a failure the falsifying
  example and a ``@reproduce_failure`` blob are printed.
- ``versions``: 20 derandomized examples, for CI's environments at the oldest and newest
  supported versions (``.ci/run``), which test that the code runs there.
- ``sweep``: 10^4 examples per property test, for measuring tolerance headroom
  (``HYPOTHESIS_PROFILE=sweep``); see ``tolerance_report.py``.
"""

import os

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=100, **_common)
settings.register_profile("ci", max_examples=100, derandomize=True, database=None, print_blob=True, **_common)
settings.register_profile("sweep", max_examples=10_000, database=None, **_common)
# CI's extra environments (oldest and newest supported versions) check that the code runs there;
# the default environment draws the full 100 examples per property test.
settings.register_profile("versions", max_examples=20, derandomize=True, database=None, print_blob=True, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev"))

if os.environ.get("NGDFORMER_TOLERANCE_REPORT"):
    from tolerance_report import install

    install(os.environ["NGDFORMER_TOLERANCE_REPORT"])
