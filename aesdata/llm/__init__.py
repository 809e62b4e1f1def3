"""The LLM layer shared by every stage that asks a model (cot, eval, mine-hard).

``client`` (any OpenAI-compatible endpoint: bounded, retrying, priced, stopped at ``--max-cost``),
``images`` (JPEG data URLs of stored images, encoded once and kept under ``cache/cot-images``),
``ledger`` (the ``cot_calls`` table: what each answered request cost), ``replies`` (replies kept until
their item is finished, so a re-run after a kill does not buy them again) and ``loop`` (a model run's event
loop, with the garbage collector kept out of its way). The words a model is shown
(question, captions, answer format) are the prompt contract, :mod:`aesdata.prompting`.
"""
