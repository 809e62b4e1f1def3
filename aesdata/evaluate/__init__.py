"""Measure models on a published dataset and make it usable for training.

``scoring`` (the pure scorer and the exact random baseline), ``answers`` (tolerant parsing of replies),
``run`` (``aesdata eval``), ``compare`` (``aesdata eval compare``), ``mining`` (``aesdata mine-hard``),
``export`` (``aesdata export``), ``reward`` (the scorer as a trainer reward function).
"""
