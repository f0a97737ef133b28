"""Scenario files (SPEC section 5): a whole situation described as JSON, loaded all-or-nothing."""

from app.scenarios.loader import LoadReport, load_scenario, load_scenario_file

__all__ = ["LoadReport", "load_scenario", "load_scenario_file"]
