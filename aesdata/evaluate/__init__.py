"""Measure models on a published dataset and make it usable for training.

``scoring`` (the pure scorer and the exact random baseline), ``answers`` (tolerant parsing of replies),
``dataset`` (reading a published version), ``asking`` (K rollouts per sample through the shared
:mod:`aesdata.llm` client, with the screening prompt of :mod:`aesdata.prompting`), ``run`` and
``journal`` (``aesdata eval``), ``compare`` (``aesdata eval compare``), ``mining`` (``aesdata
mine-hard``: the ``difficulty`` table publish reads through the store), ``export`` (``aesdata
export``), ``reward`` (the scorer as a trainer's reward function).
"""
