"""Measure models on a published dataset and make it usable for training.

``scoring`` (the pure scorer and the exact random baseline), ``answers`` (tolerant parsing of replies),
``prompt`` (the screening prompt shared by eval, mining and exports), ``dataset`` (reading a published
version), ``asking`` (K rollouts per sample through the cot client), ``run`` and ``journal``
(``aesdata eval``), ``compare`` (``aesdata eval compare``), ``mining`` (``aesdata mine-hard`` and the
``difficulty`` table publish reads), ``export`` (``aesdata export``), ``reward`` (the scorer as a
trainer's reward function).
"""
