"""Stage agents, one module per stage: each `register(stage, services)` wires topics
to a domain step through the worker's one loop. Only `pipeline.bootstrap` imports
them, and no agent imports another."""
