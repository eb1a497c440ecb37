"""planning: an event before it happens (runbook 06): traffic, service times, the capacity simulator
and the event plan. Imports from records, endpoint, account and core."""
