"""The ``cot`` stage: chain-of-thought rationales in four modes, validated before they are stored.

``client`` (any OpenAI-compatible endpoint: bounded, retrying, metered), ``images`` (JPEG data URLs,
encoded once per image), ``prompts`` (hashed templates from ``annotation/prompts/``), ``parse``
(structured replies, tolerantly), ``validate`` (pure validators), ``template`` / ``manual`` / ``llm``
(the writers of the four modes), ``ledger`` (what each request cost) and ``stage`` (the resumable run).
"""
