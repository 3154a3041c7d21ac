"""The durable campaign: its plan (what runs, in which order), its manifest and journal (what
ran, kept through any crash), resume, the runner loop with its schedule, thermal guard,
adaptive cycles, notifications and outcome. The grid it runs is planned beside it, in
``orchestration/grid*.py``; where each experiment runs is ``orchestration/executors/``."""
