"""The runbook rehearsal behind devtools/rehearse.py (see its docstring)."""
