"""The ``cot`` stage: chain-of-thought rationales in four modes, validated before they are stored.

``prompts`` (hashed templates from ``annotation/prompts/``), ``parse`` (structured replies, tolerantly),
``validate`` (pure validators), ``template`` / ``manual`` / ``llm`` (the writers of the four modes) and
``stage`` (the resumable run). The client, image renditions and cost ledger are the shared
:mod:`aesdata.llm` layer.
"""
