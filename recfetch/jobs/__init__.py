"""The jobs layer: what `list`, `download` and `pull` do, below the CLI and above the engine.

Nothing under `recfetch.jobs` imports typer or rich; the CLI builds an options
object (`recfetch.jobs.options`) and calls a job.
"""
