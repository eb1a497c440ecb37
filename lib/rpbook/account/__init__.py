"""account: the Runpod account as the runbooks drive it (runbooks 00–02, 04 and 99): the REST v2 and
queue clients, typed resources, specs and plans, placement and CUDA, preflight and budget, the Hub
and model sizing, rollouts, the ledger and teardown. Imports only from core."""
