"""The provider simulator: speaks providers' wire formats on loopback and injects faults on demand."""

from sidestep.sim.app import Received, Simulator, start_simulator
from sidestep.sim.faults import FaultSpec, Rule, Scenario, parse_fault

__all__ = ["FaultSpec", "Received", "Rule", "Scenario", "Simulator", "parse_fault", "start_simulator"]
