"""The serving path: engine, tracking, trigger, rules, verdicts, their recording, telemetry."""
