"""Publish labelled samples as versioned Hugging Face datasets (the stage: :mod:`aesdata.publish.stage`).

Import-free, so light users such as ``aesdata.publish.select`` do not load pyarrow and the Hub.
"""
