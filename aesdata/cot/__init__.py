"""The ``cot`` stage: chain-of-thought rationales in four modes, validated before they are stored.

``client`` (any OpenAI-compatible endpoint), ``images`` (JPEG data URLs, encoded once), ``prompts``
(hashed templates from ``annotation/prompts/``), ``parse`` (structured replies), ``validate`` (pure
validators), ``modes`` (one writer per mode) and ``stage`` (the resumable run).
"""
