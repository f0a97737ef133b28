"""The bulk retry of failed executions (SPEC section 3): reasons, eligibility SQL, replay, view."""
