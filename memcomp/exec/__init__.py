"""Running suites: plan (preflight), schedulers (inline, subprocess) and the cell child."""
