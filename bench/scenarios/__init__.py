"""Every scenario, in the order the report shows them.

To add one: a module here with a ``Scenario`` subclass and a ``Driver``, and an
instance of the scenario in ``SCENARIOS`` (see bench/README.md).
"""

from __future__ import annotations

from bench.scenario import Scenario
from bench.scenarios.fanout import Fanout
from bench.scenarios.relay import Relay

SCENARIOS: list[Scenario] = [Relay(), Fanout()]
