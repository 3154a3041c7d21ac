"""Served runs: an OpenAI-compatible server started (or found) on this machine, driven by the
experiment's traffic over streaming HTTP, measured on the devices it runs on.

One job per module: ``server`` (start, readiness, stop), ``client`` (streaming requests under
a traffic schedule and a concurrency limit), ``goodput`` (SLO arithmetic), ``backend`` (the
served backend the harness drives), ``summary`` (what a result records of a served run).
"""
