"""The generate stage: four candidates per source, from a diffusers pipeline or the synthetic backend.

Modules: ``stage`` (the resumable stage function), ``presets``, ``masks``, ``layout``, ``backend``
(the job/result types), ``diffusers_backend``, ``synthetic``, ``demo_sources``, ``random_pipelines``.
"""
